// Server field violations (google.rpc.BadRequest, via friendlyError().fields) shown next to the fields they name.

/** Field path (e.g. "start_time") → what the server says is wrong with it. */
export type FieldProblems = Record<string, string>;

export function FieldError({ id, message }: { id: string; message?: string }) {
  return message ? (
    <p className="field-error" id={id}>
      {message}
    </p>
  ) : null;
}

/** "Room name is required." — the field's label, then the server's description (optionally reworded). */
export function fieldMessage(
  fields: FieldProblems,
  field: string,
  label: string,
  words: (text: string) => string = (text) => text,
): string | undefined {
  return fields[field] && `${label} ${words(fields[field])}.`;
}

/** aria-invalid, and aria-describedby pointing at the field's <FieldError id=…>, while the field has a problem. */
export function invalidProps(fields: FieldProblems, field: string, errorId: string) {
  return {
    "aria-invalid": Boolean(fields[field]),
    "aria-describedby": fields[field] ? errorId : undefined,
  };
}

/** Problems with fields the form does not show, so they are listed rather than lost. */
export function unplacedProblems(fields: FieldProblems, placed: (field: string) => boolean): [string, string][] {
  return Object.entries(fields).filter(([f]) => !placed(f));
}
