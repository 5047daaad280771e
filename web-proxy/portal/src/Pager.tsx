// Keyset paging over next_page_token: the tokens seen so far make Previous possible without offsets.
import { useState } from "react";

export interface TokenPages {
  page: number;
  /** The page_token that opens the current page ("" for the first). */
  token: string;
  next: string;
  setNext(token: string): void;
  previous(): void;
  advance(): void;
  /** Back to the first page (when the filters change). */
  reset(): void;
}

export function useTokenPages(): TokenPages {
  const [tokens, setTokens] = useState<string[]>([""]); // tokens[i] opens page i
  const [page, setPage] = useState(0);
  const [next, setNext] = useState("");
  return {
    page,
    token: tokens[page],
    next,
    setNext,
    previous: () => setPage(page - 1),
    advance: () => {
      setTokens([...tokens.slice(0, page + 1), next]);
      setPage(page + 1);
    },
    reset: () => {
      setTokens([""]);
      setPage(0);
    },
  };
}

export function Pager({ pages, label }: { pages: TokenPages; label: string }) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" className="button" disabled={pages.page === 0} onClick={pages.previous}>
        Previous
      </button>
      <span aria-live="polite">Page {pages.page + 1}</span>
      <button type="button" className="button" disabled={!pages.next} onClick={pages.advance}>
        Next
      </button>
    </nav>
  );
}
