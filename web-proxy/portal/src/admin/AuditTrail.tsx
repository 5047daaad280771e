// The audit trail (ListAuditEvents): who changed what and when, newest first, filtered by action.
import { useEffect, useState } from "react";
import { adminClient } from "../api";
import { friendlyError } from "../errors";
import { formatDay, toDate } from "../format";
import type { AuditEvent } from "../gen/orflow/v1/audit_pb";

const ACTIONS = [
  ["", "Any action"],
  ["booking.created", "Booking held"],
  ["booking.confirmed", "Booking confirmed"],
  ["booking.cancelled", "Booking cancelled"],
  ["booking.expired", "Hold expired"],
  ["slot.created", "Slot published"],
  ["slot_equipment.created", "Equipment reserved for a slot"],
  ["room.created", "Room added"],
  ["doctor.created", "Surgeon added"],
  ["equipment.created", "Equipment added"],
  ["database.reset", "Demo data reset"],
] as const;

const secondsFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function AuditTrail() {
  const [action, setAction] = useState("");
  const [pageSize, setPageSize] = useState(20);
  const [tokens, setTokens] = useState<string[]>([""]); // tokens[i] opens page i
  const [page, setPage] = useState(0);
  const [rows, setRows] = useState<AuditEvent[]>([]);
  const [next, setNext] = useState("");
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    adminClient
      .listAuditEvents({ action, pageSize, pageToken: tokens[page] }, { signal: abort.signal, timeoutMs: 10_000 })
      .then(
        (reply) => {
          setRows(reply.events);
          setNext(reply.nextPageToken);
          setError("");
        },
        (err: unknown) => !abort.signal.aborted && setError(friendlyError(err).message),
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
  }, [action, pageSize, page, tokens]);

  function restart() {
    setTokens([""]);
    setPage(0);
  }

  return (
    <section className="panel" aria-labelledby="audit-title">
      <h2 id="audit-title">Audit trail</h2>
      <p className="muted small">Every change, written in the same transaction as the change itself. It cannot be edited.</p>
      <form className="filter-row" onSubmit={(e) => e.preventDefault()} aria-label="Filter the audit trail">
        <div className="field">
          <label htmlFor="a-action">Action</label>
          <select
            id="a-action"
            value={action}
            onChange={(e) => {
              setAction(e.target.value);
              restart();
            }}
          >
            {ACTIONS.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="a-size">Events per page</label>
          <select
            id="a-size"
            value={pageSize}
            onChange={(e) => {
              setPageSize(Number(e.target.value));
              restart();
            }}
          >
            {[10, 20, 50].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </div>
      </form>
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <div className="table-wrap">
        <table className="table" aria-busy={loading} aria-label="Audit events">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Actor</th>
              <th scope="col">Role</th>
              <th scope="col">Action</th>
              <th scope="col">Resource</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={String(e.id)}>
                <td className="small">
                  {formatDay(e.eventTime)} {secondsFormat.format(toDate(e.eventTime))}
                </td>
                <td>{e.actor}</td>
                <td>{e.actorRole}</td>
                <td>
                  <code className="audit-change">{e.action}</code>
                </td>
                <td>
                  {e.resourceType}
                  {e.resourceId && ` #${e.resourceId}`}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && !loading && <p className="empty">No events match.</p>}
      </div>
      <nav className="pager" aria-label="Audit trail pages">
        <button type="button" className="button" disabled={page === 0} onClick={() => setPage(page - 1)}>
          Previous
        </button>
        <span aria-live="polite">Page {page + 1}</span>
        <button
          type="button"
          className="button"
          disabled={!next}
          onClick={() => {
            setTokens([...tokens.slice(0, page + 1), next]);
            setPage(page + 1);
          }}
        >
          Next
        </button>
      </nav>
    </section>
  );
}
