// Edit and retire, the command center's half of AIP-134/154: a form sends only the fields it changed, with the
// etag it read; a stale etag (ABORTED / ETAG_MISMATCH) reloads the current values into the form and says so.
// Retiring asks first, and when future bookings depend on the thing, names them and offers to cancel them too.
import { useEffect, useRef, useState } from "react";
import { bookingIds, bookingList, friendlyError } from "../errors";
import { ErrorReason } from "../gen/orflow/v1/error_reason_pb";
import { FieldError, type FieldProblems, unplacedProblems } from "./fieldErrors";

export interface EditField {
  /** The resource's field path as the update_mask names it ("name", "turnover", "room.id", "start_time"). */
  name: string;
  label: string;
  type?: "text" | "number" | "select" | "date" | "time";
  options?: { value: string; label: string }[];
  hint?: string;
  min?: number;
}

export type Values = Record<string, string>;

/** The server's field violations for `field`, whatever the path's prefix ("room.name", "name"). */
function problemFor(fields: FieldProblems, field: string): string | undefined {
  const key = Object.keys(fields).find((f) => f === field || f.endsWith(`.${field}`) || field.endsWith(`.${f}`));
  return key && fields[key];
}

export function EditForm(props: {
  id: string;
  title: string;
  fields: EditField[];
  /** The values as read (with the etag the save sends). */
  initial: Values;
  /** Sends the changed fields; resolves to the confirmation to show. */
  save: (values: Values, changed: string[]) => Promise<string>;
  /** Reads the resource again (after a stale etag); resolves to its current values. */
  reload: () => Promise<Values | null>;
  onSaved: (message: string) => void;
  onClose: () => void;
  /** Problems found before any call (input the request cannot carry). */
  check?: (values: Values) => FieldProblems;
}) {
  const [values, setValues] = useState<Values>(props.initial);
  const [base, setBase] = useState<Values>(props.initial);
  const [fields, setFields] = useState<FieldProblems>({});
  const [error, setError] = useState("");
  const [working, setWorking] = useState(false);
  const title = useRef<HTMLHeadingElement>(null);
  useEffect(() => title.current?.focus(), []);

  const changed = props.fields.map((f) => f.name).filter((name) => values[name] !== base[name]);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setError("");
    setFields({});
    const local = props.check?.(values) ?? {};
    if (Object.keys(local).length > 0) return setFields(local);
    if (changed.length === 0) return setError("Nothing changed yet: edit a field, then save.");
    setWorking(true);
    try {
      props.onSaved(await props.save(values, changed));
    } catch (err) {
      const friendly = friendlyError(err);
      setFields(friendly.fields);
      if (friendly.reason === ErrorReason.ETAG_MISMATCH) {
        const fresh = await props.reload().catch(() => null);
        if (fresh) {
          setValues(fresh);
          setBase(fresh);
        }
      }
      setError(friendly.message);
      title.current?.focus();
    } finally {
      setWorking(false);
    }
  }

  const errorId = (field: string) => `${props.id}-${field.replace(/\W/g, "-")}-error`;
  const inputId = (field: string) => `${props.id}-${field.replace(/\W/g, "-")}`;
  return (
    <form className="edit-form confirm" aria-labelledby={`${props.id}-title`} noValidate onSubmit={(e) => void submit(e)}>
      <h4 id={`${props.id}-title`} ref={title} tabIndex={-1}>
        {props.title}
      </h4>
      {error && (
        <p className="alert alert-error" role="alert" data-testid="edit-error">
          {error}
        </p>
      )}
      <div className="edit-fields">
        {props.fields.map((f) => {
          const problem = problemFor(fields, f.name);
          const describedBy = [problem ? errorId(f.name) : "", f.hint ? `${inputId(f.name)}-hint` : ""].filter(Boolean).join(" ");
          const common = {
            id: inputId(f.name),
            value: values[f.name] ?? "",
            "aria-invalid": Boolean(problem),
            "aria-describedby": describedBy || undefined,
          };
          return (
            <div className="field" key={f.name}>
              <label htmlFor={inputId(f.name)}>{f.label}</label>
              {f.type === "select" ? (
                <select {...common} onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}>
                  {f.options?.map((o) => (
                    <option key={o.value} value={o.value}>
                      {o.label}
                    </option>
                  ))}
                </select>
              ) : (
                <input
                  {...common}
                  type={f.type ?? "text"}
                  min={f.min}
                  inputMode={f.type === "number" ? "numeric" : undefined}
                  autoComplete="off"
                  onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
                />
              )}
              {f.hint && (
                <p className="small muted" id={`${inputId(f.name)}-hint`}>
                  {f.hint}
                </p>
              )}
              <FieldError id={errorId(f.name)} message={problem && `${f.label} ${problem}.`} />
            </div>
          );
        })}
      </div>
      {unplacedProblems(fields, (f) => props.fields.some((x) => problemFor({ [f]: "x" }, x.name))).map(([f, d]) => (
        <p className="field-error" key={f}>
          {f}: {d}
        </p>
      ))}
      <div className="actions">
        <button type="submit" className="button primary" disabled={working}>
          {working ? "Saving…" : "Save changes"}
        </button>
        <button type="button" className="button" onClick={props.onClose}>
          Close without saving
        </button>
      </div>
    </form>
  );
}

export interface Retired {
  /** How many bookings the retirement cancelled. */
  cancelled: number;
}

export function RetirePanel(props: {
  id: string;
  /** "operating room", "surgeon", "equipment type", "slot". */
  kind: string;
  name: string;
  retire: (cancelBookings: boolean, note: string) => Promise<Retired>;
  /** Reads the resource again (after a stale etag), so the next try sends its current etag. */
  reload: () => Promise<unknown>;
  onRetired: (message: string) => void;
  onClose: () => void;
}) {
  const [note, setNote] = useState("");
  const [blockers, setBlockers] = useState<string[]>([]);
  const [alsoCancel, setAlsoCancel] = useState(false);
  const [error, setError] = useState("");
  const [working, setWorking] = useState(false);
  const title = useRef<HTMLHeadingElement>(null);
  useEffect(() => title.current?.focus(), []);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setWorking(true);
    setError("");
    try {
      const done = await props.retire(alsoCancel && blockers.length > 0, note.trim());
      const cancelled = done.cancelled ? `; ${done.cancelled} ${done.cancelled === 1 ? "booking was" : "bookings were"} cancelled` : "";
      props.onRetired(`${props.name} retired${cancelled}.`);
    } catch (err) {
      const friendly = friendlyError(err);
      if (friendly.reason === ErrorReason.RESOURCE_IN_USE) {
        setBlockers(bookingIds(friendly.metadata));
        setAlsoCancel(false);
      }
      if (friendly.reason === ErrorReason.ETAG_MISMATCH) await props.reload().catch(() => undefined);
      setError(friendly.message);
    } finally {
      setWorking(false);
    }
  }

  const n = blockers.length;
  return (
    <form className="confirm retire-form" aria-labelledby={`${props.id}-title`} onSubmit={(e) => void submit(e)}>
      <h4 id={`${props.id}-title`} ref={title} tabIndex={-1}>
        Retire {props.name}?
      </h4>
      <p className="small">
        The {props.kind} will never be offered or booked again. Its history and the audit trail keep it.
      </p>
      {error && (
        <p className="alert alert-error" role="alert" data-testid="retire-error">
          {error}
        </p>
      )}
      <div className="field">
        <label htmlFor={`${props.id}-note`}>Why (optional; each cancelled booking's patient sees it)</label>
        <input id={`${props.id}-note`} value={note} maxLength={500} onChange={(e) => setNote(e.target.value)} />
      </div>
      {n > 0 && (
        <label className="check">
          <input type="checkbox" checked={alsoCancel} onChange={(e) => setAlsoCancel(e.target.checked)} /> Also cancel{" "}
          {n === 1 ? "this booking" : `these ${n} bookings`} ({bookingList(blockers)})
        </label>
      )}
      <div className="actions">
        <button type="submit" className="button danger" disabled={working}>
          {alsoCancel && n > 0 ? `Retire and cancel ${n} ${n === 1 ? "booking" : "bookings"}` : `Retire ${props.kind}`}
        </button>
        <button type="button" className="button" onClick={props.onClose}>
          Keep it
        </button>
      </div>
    </form>
  );
}
