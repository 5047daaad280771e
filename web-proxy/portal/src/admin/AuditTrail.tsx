// The audit trail (ListAuditEvents): who changed what and when, newest first, filtered by action.
import { useEffect, useState } from "react";
import { adminClient } from "../api";
import { Pager, useTokenPages } from "../Pager";
import { friendlyError } from "../errors";
import { formatDay, toDate, zoneAbbreviation } from "../format";
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

// Audit events belong to no one site: they are shown on this browser's clock, and the column says which.
const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const secondsFormat = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hourCycle: "h23",
  timeZone: browserZone,
});

export function AuditTrail() {
  const [action, setAction] = useState("");
  const [pageSize, setPageSize] = useState(20);
  const pages = useTokenPages();
  const [rows, setRows] = useState<AuditEvent[]>([]);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    adminClient
      .listAuditEvents({ action, pageSize, pageToken: pages.token }, { signal: abort.signal, timeoutMs: 10_000 })
      .then(
        (reply) => {
          setRows(reply.events);
          pages.setNext(reply.nextPageToken);
          setError("");
        },
        (err: unknown) => !abort.signal.aborted && setError(friendlyError(err).message),
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
  }, [action, pageSize, pages.page, pages.token]);


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
              pages.reset();
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
              pages.reset();
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
              <th scope="col">Time (your zone, {browserZone})</th>
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
                  {formatDay(e.eventTime, browserZone)} {secondsFormat.format(toDate(e.eventTime))}{" "}
                  {zoneAbbreviation(e.eventTime, browserZone)}
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
      <Pager pages={pages} label="Audit trail pages" />
    </section>
  );
}
