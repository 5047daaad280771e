import { useEffect, useState } from "react";
import { adminClient, slotClient } from "../api";
import { Pager, useTokenPages } from "../Pager";
import { friendlyError } from "../errors";
import { formatInstant, formatRange, zoneOf } from "../format";
import { BookingStatus, type Booking } from "../gen/orflow/v1/booking_pb";
import type { Slot } from "../gen/orflow/v1/resources_pb";

const STATUSES = [
  [BookingStatus.UNSPECIFIED, "Any status"],
  [BookingStatus.PENDING, "On hold"],
  [BookingStatus.CONFIRMED, "Confirmed"],
  [BookingStatus.FAILED, "Hold expired / failed"],
  [BookingStatus.CANCELLED, "Cancelled"],
] as const;

function statusLabel(status: BookingStatus): string {
  return STATUSES.find(([s]) => s === status)?.[1] ?? "Unknown";
}

export function BookingsReport() {
  const [status, setStatus] = useState<BookingStatus>(BookingStatus.UNSPECIFIED);
  const [patient, setPatient] = useState("");
  const [slotId, setSlotId] = useState("");
  const [pageSize, setPageSize] = useState(20);
  const pages = useTokenPages();
  const [rows, setRows] = useState<Booking[]>([]);
  const [slots, setSlots] = useState<Map<string, Slot>>(new Map());
  const [error, setError] = useState("");
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [loading, setLoading] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    adminClient
      .listBookings(
        { status, patientId: patient.trim(), slotId: BigInt(/^\d+$/.test(slotId) ? slotId : 0), pageSize, pageToken: pages.token },
        { signal: abort.signal, timeoutMs: 10_000 },
      )
      .then(
        async (reply) => {
          setRows(reply.bookings);
          pages.setNext(reply.nextPageToken);
          setError("");
          setFieldErrors({});
          const missing = [...new Set(reply.bookings.map((b) => String(b.slotId)))].filter((id) => !slots.has(id));
          const found = await Promise.all(
            missing.map((id) => slotClient.getSlot({ slotId: BigInt(id) }).then((r) => r.slot, () => undefined)),
          );
          if (!abort.signal.aborted) {
            setSlots((current) => {
              const map = new Map(current);
              for (const s of found) if (s) map.set(String(s.id), s);
              return map;
            });
          }
        },
        (err: unknown) => {
          if (abort.signal.aborted) return;
          const friendly = friendlyError(err);
          setError(friendly.message);
          setFieldErrors(friendly.fields);
        },
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps -- slots is a cache, not an input
  }, [status, patient, slotId, pageSize, pages.page, pages.token]);


  return (
    <section className="panel" aria-labelledby="bookings-title">
      <h2 id="bookings-title">All bookings</h2>
      <form className="filter-row" onSubmit={(e) => e.preventDefault()} aria-label="Filter bookings">
        <div className="field">
          <label htmlFor="f-status">Status</label>
          <select
            id="f-status"
            value={status}
            onChange={(e) => {
              setStatus(Number(e.target.value) as BookingStatus);
              pages.reset();
            }}
          >
            {STATUSES.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor="f-patient">Patient ID</label>
          <input
            id="f-patient"
            value={patient}
            aria-invalid={Boolean(fieldErrors.patient_id)}
            onChange={(e) => {
              setPatient(e.target.value);
              pages.reset();
            }}
          />
          {fieldErrors.patient_id && <p className="field-error">Patient ID {fieldErrors.patient_id}</p>}
        </div>
        <div className="field">
          <label htmlFor="f-slot">Slot number</label>
          <input
            id="f-slot"
            inputMode="numeric"
            value={slotId}
            onChange={(e) => {
              setSlotId(e.target.value.replace(/\D/g, ""));
              pages.reset();
            }}
          />
        </div>
        <div className="field">
          <label htmlFor="f-size">Per page</label>
          <select
            id="f-size"
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
        <table className="table" aria-busy={loading}>
          <caption className="visually-hidden">Bookings, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Booking</th>
              <th scope="col">Status</th>
              <th scope="col">Patient</th>
              <th scope="col">Slot</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((b) => {
              const slot = slots.get(String(b.slotId));
              return (
                <tr key={String(b.id)}>
                  <td>#{String(b.id)}</td>
                  <td>
                    <span className={`badge badge-${BookingStatus[b.status].toLowerCase()}`}>{statusLabel(b.status)}</span>
                  </td>
                  <td>{b.patientId}</td>
                  <td>
                    #{String(b.slotId)}
                    {slot && (
                      <span className="muted small">
                        {" "}
                        · {slot.procedureType}, {slot.room?.name}, {formatRange(slot.startTime, slot.endTime, zoneOf(slot.site))}
                      </span>
                    )}
                  </td>
                  <td className="small">
                    {formatInstant(b.createTime, zoneOf(b.site))}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        {rows.length === 0 && !loading && <p className="empty">No bookings match.</p>}
      </div>
      <Pager pages={pages} label="Bookings pages" />
    </section>
  );
}
