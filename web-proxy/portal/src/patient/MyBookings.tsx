// The signed-in patient's own bookings (ListPatientBookings: the server reads the patient from the token).
import { Fragment, useEffect, useState } from "react";
import { bookingClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { formatInstant, formatRange, zoneOf } from "../format";
import { BookingStatus, CancellationReason, type Booking } from "../gen/orflow/v1/booking_pb";
import type { Slot } from "../gen/orflow/v1/resources_pb";
import { useAuth } from "../session";

const PAGE_SIZE = 20;

const STATUS_WORDS: Record<BookingStatus, string> = {
  [BookingStatus.UNSPECIFIED]: "Unknown",
  [BookingStatus.PENDING]: "On hold",
  [BookingStatus.CONFIRMED]: "Confirmed",
  [BookingStatus.FAILED]: "Hold ran out",
  [BookingStatus.CANCELLED]: "Cancelled",
  [BookingStatus.CHECKED_IN]: "Checked in",
  [BookingStatus.IN_PROGRESS]: "In surgery",
  [BookingStatus.COMPLETED]: "Completed",
  [BookingStatus.NO_SHOW]: "Missed",
};

const REASON_WORDS: Record<CancellationReason, string> = {
  [CancellationReason.UNSPECIFIED]: "",
  [CancellationReason.PATIENT_REQUEST]: "at your request",
  [CancellationReason.SURGEON_UNAVAILABLE]: "the surgeon is unavailable",
  [CancellationReason.EQUIPMENT_UNAVAILABLE]: "equipment is unavailable",
  [CancellationReason.MEDICAL]: "a medical reason",
  [CancellationReason.SLOT_CANCELLED]: "the hospital cancelled the slot",
  [CancellationReason.OTHER]: "another reason",
};

/** The reasons a patient may give (the staff-side ones, and SLOT_CANCELLED, are not theirs to pick). */
const PATIENT_REASONS = [
  { value: CancellationReason.PATIENT_REQUEST, label: "I no longer want this date" },
  { value: CancellationReason.MEDICAL, label: "A medical reason" },
  { value: CancellationReason.OTHER, label: "Something else (say what below)" },
];

const CHANGEABLE = new Set([BookingStatus.PENDING, BookingStatus.CONFIRMED]);

function newRequestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function MyBookingsPage() {
  const { session } = useAuth();
  return (
    <div className="page">
      <section className="intro" aria-labelledby="my-bookings-title">
        <h1 id="my-bookings-title">My bookings</h1>
        <p className="muted">Every slot you have held or booked, newest first.</p>
      </section>
      {session?.role === "patient" ? (
        <BookingList key={session.subject} />
      ) : (
        <p className="panel">
          {session ? "This page lists a patient's own bookings; you are signed in as staff." : "Sign in to see your bookings."}{" "}
          <a href="#/sign-in">Sign in as a patient</a>
        </p>
      )}
    </div>
  );
}

function BookingList() {
  const [bookings, setBookings] = useState<Booking[]>([]);
  const [slots, setSlots] = useState<Map<string, Slot>>(new Map());
  const [pageToken, setPageToken] = useState("");
  const [next, setNext] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [acting, setActing] = useState<{ id: bigint; what: "reschedule" | "cancel" } | null>(null);
  const [message, setMessage] = useState("");

  function replaced(booking: Booking, slot?: Slot) {
    setBookings((current) => current.map((b) => (b.id === booking.id ? booking : b)));
    if (slot) setSlots((current) => new Map(current).set(String(slot.id), slot));
    setActing(null);
    document.getElementById(`booking-${booking.id}`)?.focus();
  }

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    bookingClient
      .listPatientBookings({ pageSize: PAGE_SIZE, pageToken }, { signal: abort.signal, timeoutMs: 10_000 })
      .then(
        async (reply) => {
          setBookings((current) => (pageToken ? [...current, ...reply.bookings] : reply.bookings));
          setNext(reply.nextPageToken);
          setError("");
          const ids = [...new Set(reply.bookings.map((b) => b.slotId))];
          const found = await Promise.all(ids.map((id) => slotClient.getSlot({ slotId: id }).then((r) => r.slot, () => undefined)));
          if (abort.signal.aborted) return;
          setSlots((current) => {
            const map = new Map(current);
            for (const s of found) if (s) map.set(String(s.id), s);
            return map;
          });
        },
        (err: unknown) => !abort.signal.aborted && setError(friendlyError(err).message),
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
  }, [pageToken]);

  return (
    <section className="panel" aria-labelledby="my-list-title" aria-busy={loading}>
      <h2 id="my-list-title" className="visually-hidden">
        Bookings
      </h2>
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <p className="visually-hidden" role="status" aria-live="polite" data-testid="bookings-announcer">
        {message}
      </p>
      {message && (
        <p className="alert alert-ok" aria-hidden="true">
          {message}
        </p>
      )}
      {!loading && !error && bookings.length === 0 && (
        <p className="empty">
          No bookings yet. <a href="#/">Find a slot</a>
        </p>
      )}
      {bookings.length > 0 && (
        <div className="table-wrap">
          <table className="table" aria-label="My bookings">
            <thead>
              <tr>
                <th scope="col">Booking</th>
                <th scope="col">Status</th>
                <th scope="col">Surgery</th>
                <th scope="col">Booked</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {bookings.map((b) => {
                const slot = slots.get(String(b.slotId));
                const canChange = CHANGEABLE.has(b.status);
                return (
                  <Fragment key={String(b.id)}>
                  <tr data-booking-id={String(b.id)}>
                    <td>
                      <span id={`booking-${b.id}`} tabIndex={-1}>
                        #{String(b.id)}
                      </span>
                    </td>
                    <td>
                      <span className={`badge badge-${BookingStatus[b.status].toLowerCase()}`} data-testid="booking-state">
                        {STATUS_WORDS[b.status]}
                      </span>
                      {b.status === BookingStatus.CANCELLED && b.cancellationReason !== CancellationReason.UNSPECIFIED && (
                        <span className="small muted cancel-why" data-testid="cancel-reason">
                          {" "}
                          — {REASON_WORDS[b.cancellationReason]}
                          {b.cancellationNote ? `: ${b.cancellationNote}` : ""}
                        </span>
                      )}
                    </td>
                    <td>
                      {slot ? (
                        <>
                          <strong>{slot.procedureType}</strong> with {slot.doctor?.name}, {slot.room?.name}
                          <br />
                          <span className="small" data-testid="booking-time">
                            {formatRange(slot.startTime, slot.endTime, zoneOf(slot.site))}
                          </span>
                        </>
                      ) : (
                        `Slot #${String(b.slotId)}`
                      )}
                    </td>
                    <td className="small">
                      {formatInstant(b.createTime, zoneOf(b.site))}
                    </td>
                    <td className="row-actions">
                      {canChange && (
                        <>
                          <button
                            type="button"
                            className="button"
                            aria-describedby={`booking-${b.id}`}
                            aria-expanded={acting?.id === b.id && acting.what === "reschedule"}
                            onClick={() => setActing({ id: b.id, what: "reschedule" })}
                          >
                            Reschedule…
                          </button>
                          <button
                            type="button"
                            className="button"
                            aria-describedby={`booking-${b.id}`}
                            aria-expanded={acting?.id === b.id && acting.what === "cancel"}
                            onClick={() => setActing({ id: b.id, what: "cancel" })}
                          >
                            Cancel…
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                  {acting?.id === b.id && (
                    <tr className="row-form">
                      <td colSpan={5}>
                        {acting.what === "reschedule" ? (
                          <ReschedulePicker
                            booking={b}
                            current={slot}
                            onDone={(moved, to) => {
                              replaced(moved, to);
                              setMessage(`Booking #${moved.id} moved to ${to.procedureType}, ${formatRange(to.startTime, to.endTime, zoneOf(to.site))}.`);
                            }}
                            onClose={() => {
                              setActing(null);
                              document.getElementById(`booking-${b.id}`)?.focus();
                            }}
                          />
                        ) : (
                          <CancelForm
                            booking={b}
                            onDone={(cancelled) => {
                              replaced(cancelled);
                              setMessage(`Booking #${cancelled.id} cancelled.`);
                            }}
                            onClose={() => {
                              setActing(null);
                              document.getElementById(`booking-${b.id}`)?.focus();
                            }}
                          />
                        )}
                      </td>
                    </tr>
                  )}
                  </Fragment>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {next && (
        <button type="button" className="button" disabled={loading} onClick={() => setPageToken(next)}>
          Show older bookings
        </button>
      )}
    </section>
  );
}

/** Pick another free slot (same procedure first) and move the booking there in one step (RescheduleBooking). */
function ReschedulePicker(props: {
  booking: Booking;
  current: Slot | undefined;
  onDone: (booking: Booking, slot: Slot) => void;
  onClose: () => void;
}) {
  const { booking, current } = props;
  const [anyProcedure, setAnyProcedure] = useState(!current);
  const [choices, setChoices] = useState<Slot[]>([]);
  const [loading, setLoading] = useState(true);
  const [working, setWorking] = useState(false);
  const [error, setError] = useState("");
  const titleId = `reschedule-${booking.id}-title`;

  useEffect(() => {
    document.getElementById(titleId)?.focus();
  }, [titleId]);

  useEffect(() => {
    const abort = new AbortController();
    setLoading(true);
    slotClient
      .listSlots(
        { pageSize: 8, availableOnly: true, procedureType: anyProcedure ? "" : (current?.procedureType ?? "") },
        { signal: abort.signal, timeoutMs: 10_000 },
      )
      .then(
        (reply) => {
          setChoices(reply.slots.filter((s) => s.id !== booking.slotId));
          setError("");
        },
        (err: unknown) => !abort.signal.aborted && setError(friendlyError(err).message),
      )
      .finally(() => !abort.signal.aborted && setLoading(false));
    return () => abort.abort();
  }, [anyProcedure, current, booking.slotId]);

  async function moveTo(slot: Slot) {
    setWorking(true);
    setError("");
    try {
      const reply = await bookingClient.rescheduleBooking(
        { bookingId: booking.id, slotId: slot.id, requestId: newRequestId() },
        { timeoutMs: 10_000 },
      );
      if (reply.booking) props.onDone(reply.booking, slot);
    } catch (err) {
      setError(friendlyError(err).message);
    } finally {
      setWorking(false);
    }
  }

  return (
    <section className="picker" aria-labelledby={titleId} aria-busy={loading}>
      <h3 id={titleId} tabIndex={-1}>
        Move booking #{String(booking.id)} to another slot
      </h3>
      <p className="small muted">Your booking moves in one step: you keep this slot until the new one is yours.</p>
      {current && (
        <label className="check">
          <input type="checkbox" checked={anyProcedure} onChange={(e) => setAnyProcedure(e.target.checked)} /> Show every
          procedure, not only {current.procedureType}
        </label>
      )}
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      {!loading && choices.length === 0 && <p className="empty">No other free slot right now.</p>}
      <ul className="plain-list choices">
        {choices.map((s) => (
          <li key={String(s.id)} data-slot-id={String(s.id)}>
            <span>
              <strong>{s.procedureType}</strong> with {s.doctor?.name}, {s.room?.name} · {formatRange(s.startTime, s.endTime, zoneOf(s.site))}
            </span>
            <button type="button" className="button primary" disabled={working} onClick={() => void moveTo(s)}>
              Move here<span className="visually-hidden">: {formatRange(s.startTime, s.endTime, zoneOf(s.site))}</span>
            </button>
          </li>
        ))}
      </ul>
      <button type="button" className="link-button" onClick={props.onClose}>
        Keep my booking as it is
      </button>
    </section>
  );
}

/** Cancel with a coded reason and an optional note (CancelBooking records both, and who cancelled). */
function CancelForm(props: { booking: Booking; onDone: (booking: Booking) => void; onClose: () => void }) {
  const { booking } = props;
  const [reason, setReason] = useState(CancellationReason.PATIENT_REQUEST);
  const [note, setNote] = useState("");
  const [working, setWorking] = useState(false);
  const [error, setError] = useState("");
  const id = `cancel-${booking.id}`;

  useEffect(() => {
    document.getElementById(`${id}-reason`)?.focus();
  }, [id]);

  async function submit() {
    setWorking(true);
    setError("");
    try {
      const reply = await bookingClient.cancelBooking({ bookingId: booking.id, reason, note: note.trim() }, { timeoutMs: 10_000 });
      if (reply.booking) props.onDone(reply.booking);
    } catch (err) {
      setError(friendlyError(err).message);
    } finally {
      setWorking(false);
    }
  }

  return (
    <form
      className="confirm"
      aria-labelledby={`${id}-title`}
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <h3 id={`${id}-title`}>Cancel booking #{String(booking.id)}</h3>
      <p className="small">The slot is freed at once for someone else. This cannot be undone.</p>
      <div className="row-2">
        <div className="field">
          <label htmlFor={`${id}-reason`}>Why are you cancelling?</label>
          <select id={`${id}-reason`} value={reason} onChange={(e) => setReason(Number(e.target.value) as CancellationReason)}>
            {PATIENT_REASONS.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-note`}>Anything to add? (optional)</label>
          <input id={`${id}-note`} value={note} maxLength={500} onChange={(e) => setNote(e.target.value)} />
        </div>
      </div>
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="button danger" disabled={working}>
          Cancel booking
        </button>
        <button type="button" className="button" onClick={props.onClose}>
          Keep my booking
        </button>
      </div>
    </form>
  );
}
