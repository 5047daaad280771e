// The day board: a UTC day's cases per room, each with its state and the one-click transitions it allows
// (CheckInBooking → StartBooking → CompleteBooking, or MarkBookingNoShow), and CancelSlot with a reason.
// Times are UTC for now, and labelled so: the site time zones land with sites (issue 14), not here.
import { useCallback, useEffect, useState } from "react";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { adminClient, bookingClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { toDate } from "../format";
import { BookingStatus, type Booking } from "../gen/orflow/v1/booking_pb";
import type { Room, Slot } from "../gen/orflow/v1/resources_pb";

const utcTime = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC" });

export function formatUtcTime(ts: Timestamp | undefined): string {
  return utcTime.format(toDate(ts));
}

/** "2030-05-04" for the UTC day of `date`. */
function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

function utcDayWindow(day: string): { start: Timestamp; end: Timestamp } {
  const start = new Date(`${day}T00:00:00Z`);
  return { start: timestampFromDate(start), end: timestampFromDate(new Date(start.getTime() + 24 * 3600 * 1000)) };
}

const STATE_WORDS: Partial<Record<BookingStatus, string>> = {
  [BookingStatus.PENDING]: "On hold",
  [BookingStatus.CONFIRMED]: "Confirmed",
  [BookingStatus.CHECKED_IN]: "Checked in",
  [BookingStatus.IN_PROGRESS]: "In surgery",
  [BookingStatus.COMPLETED]: "Completed",
  [BookingStatus.NO_SHOW]: "No-show",
  [BookingStatus.CANCELLED]: "Cancelled",
  [BookingStatus.FAILED]: "Hold ran out",
};

type Step = "checkIn" | "start" | "complete" | "noShow";

/** The transitions each state allows (the server refuses any other, naming the current state). */
const STEPS: Partial<Record<BookingStatus, { step: Step; label: string }[]>> = {
  [BookingStatus.CONFIRMED]: [
    { step: "checkIn", label: "Check in" },
    { step: "noShow", label: "No-show" },
  ],
  [BookingStatus.CHECKED_IN]: [{ step: "start", label: "Start" }],
  [BookingStatus.IN_PROGRESS]: [{ step: "complete", label: "Complete" }],
};

async function advance(step: Step, bookingId: bigint): Promise<Booking | undefined> {
  const request = { bookingId };
  const options = { timeoutMs: 10_000 };
  switch (step) {
    case "checkIn":
      return (await bookingClient.checkInBooking(request, options)).booking;
    case "start":
      return (await bookingClient.startBooking(request, options)).booking;
    case "complete":
      return (await bookingClient.completeBooking(request, options)).booking;
    case "noShow":
      return (await bookingClient.markBookingNoShow(request, options)).booking;
  }
}

/** Coded reasons for cancelling a slot. CancelSlot records the booking's reason as SLOT_CANCELLED and takes a
 * note: the code leads the note, so the audit trail and the patient see why in words. */
export const SLOT_CANCEL_REASONS = [
  "Surgeon unavailable",
  "Theatre closed",
  "Equipment unavailable",
  "Medical",
  "Other",
] as const;

const ACTIVE = new Set([
  BookingStatus.PENDING,
  BookingStatus.CONFIRMED,
  BookingStatus.CHECKED_IN,
  BookingStatus.IN_PROGRESS,
  BookingStatus.COMPLETED,
  BookingStatus.NO_SHOW,
]);

/** The booking that speaks for a slot: the active one, else the newest (a cancelled or lapsed one). */
function caseOf(bookings: Booking[]): Booking | undefined {
  return bookings.find((b) => ACTIVE.has(b.status)) ?? bookings[0];
}

interface Case {
  slot: Slot;
  booking?: Booking;
}

async function loadDay(day: string): Promise<{ rooms: Room[]; cases: Case[] }> {
  const window = utcDayWindow(day);
  const slots: Slot[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listSlots(
      { pageSize: 200, pageToken, windowStart: window.start, windowEnd: window.end },
      { timeoutMs: 10_000 },
    );
    slots.push(...reply.slots);
    pageToken = reply.nextPageToken;
  } while (pageToken && slots.length < 1000);
  const [roomReply, bookings] = await Promise.all([
    adminClient.listRooms({}, { timeoutMs: 10_000 }),
    Promise.all(
      slots.map((s) => adminClient.listBookings({ slotId: s.id, pageSize: 20 }, { timeoutMs: 10_000 }).then((r) => r.bookings)),
    ),
  ]);
  const cases = slots
    .map((slot, i) => ({ slot, booking: caseOf(bookings[i]) }))
    .sort((a, b) => toDate(a.slot.startTime).getTime() - toDate(b.slot.startTime).getTime());
  return { rooms: roomReply.rooms, cases };
}

export function DayBoard() {
  const [day, setDay] = useState(() => utcDay(new Date()));
  const [rooms, setRooms] = useState<Room[]>([]);
  const [cases, setCases] = useState<Case[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [message, setMessage] = useState("");
  const [working, setWorking] = useState<bigint | null>(null);
  const [cancelling, setCancelling] = useState<bigint | null>(null);

  const load = useCallback(async (which: string) => {
    setLoading(true);
    try {
      const loaded = await loadDay(which);
      setRooms(loaded.rooms);
      setCases(loaded.cases);
      setError("");
    } catch (err) {
      setError(friendlyError(err).message);
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    void load(day);
  }, [day, load]);

  function replaceCase(slotId: bigint, update: Partial<Case>) {
    setCases((current) => current.map((c) => (c.slot.id === slotId ? { ...c, ...update } : c)));
  }

  async function onStep(c: Case, step: Step, label: string) {
    if (!c.booking) return;
    setWorking(c.slot.id);
    setError("");
    try {
      const booking = await advance(step, c.booking.id);
      if (booking) replaceCase(c.slot.id, { booking });
      setMessage(`${c.slot.procedureType} in ${c.slot.room?.name}: ${label} done — now ${STATE_WORDS[booking?.status ?? BookingStatus.UNSPECIFIED] ?? ""}.`);
      // The button pressed is gone (its state moved on): keep the keyboard on this case.
      document.getElementById(`case-${c.slot.id}`)?.focus();
    } catch (err) {
      setError(friendlyError(err).message);
      void load(day);
    } finally {
      setWorking(null);
    }
  }

  async function onCancelSlot(c: Case, reason: string, note: string) {
    setWorking(c.slot.id);
    setError("");
    try {
      const reply = await adminClient.cancelSlot(
        { slotId: c.slot.id, note: note.trim() ? `${reason}: ${note.trim()}` : reason },
        { timeoutMs: 10_000 },
      );
      replaceCase(c.slot.id, { slot: reply.slot ?? c.slot, booking: reply.cancelledBooking ?? c.booking });
      setCancelling(null);
      setMessage(`Slot #${c.slot.id} cancelled (${reason})${reply.cancelledBooking ? "; its booking was cancelled" : ""}.`);
      document.getElementById(`case-${c.slot.id}`)?.focus();
    } catch (err) {
      setError(friendlyError(err).message);
    } finally {
      setWorking(null);
    }
  }

  const roomsWithCases = rooms.filter((r) => cases.some((c) => c.slot.room?.id === r.id));
  return (
    <section className="panel day-board" aria-labelledby="board-title" aria-busy={loading}>
      <div className="results-head">
        <h2 id="board-title">Day board</h2>
        <div className="field inline">
          <label htmlFor="board-day">Day (UTC)</label>
          <input id="board-day" type="date" value={day} onChange={(e) => e.target.value && setDay(e.target.value)} />
        </div>
      </div>
      <p className="muted small" id="board-zone">
        All times on this board are in <strong>UTC</strong>.
      </p>
      <p className="visually-hidden" role="status" aria-live="polite" data-testid="board-announcer">
        {message}
      </p>
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      {!loading && cases.length === 0 && <p className="empty">No cases on this day.</p>}
      {roomsWithCases.map((room) => (
        <section key={String(room.id)} className="board-room" aria-labelledby={`board-room-${room.id}`}>
          <h3 id={`board-room-${room.id}`}>{room.name}</h3>
          <ol className="board-cases">
            {cases
              .filter((c) => c.slot.room?.id === room.id)
              .map((c) => (
                <CaseRow
                  key={String(c.slot.id)}
                  item={c}
                  busy={working === c.slot.id}
                  isCancelling={cancelling === c.slot.id}
                  onStep={(step, label) => void onStep(c, step, label)}
                  onAskCancel={() => setCancelling(c.slot.id)}
                  onKeep={() => {
                    setCancelling(null);
                    document.getElementById(`case-${c.slot.id}`)?.focus();
                  }}
                  onCancel={(reason, note) => void onCancelSlot(c, reason, note)}
                />
              ))}
          </ol>
        </section>
      ))}
    </section>
  );
}

function stateOf(c: Case): { word: string; css: string } {
  if (c.slot.cancelTime) return { word: "Slot cancelled", css: "cancelled" };
  if (!c.booking) return { word: c.slot.available ? "Free" : "Not booked", css: "free" };
  const status = c.booking.status;
  return { word: STATE_WORDS[status] ?? "Unknown", css: BookingStatus[status].toLowerCase().replace("_", "-") };
}

function CaseRow(props: {
  item: Case;
  busy: boolean;
  isCancelling: boolean;
  onStep: (step: Step, label: string) => void;
  onAskCancel: () => void;
  onKeep: () => void;
  onCancel: (reason: string, note: string) => void;
}) {
  const { item, busy, isCancelling } = props;
  const { slot, booking } = item;
  const state = stateOf(item);
  const steps = !slot.cancelTime && booking ? (STEPS[booking.status] ?? []) : [];
  const canCancelSlot =
    !slot.cancelTime && booking?.status !== BookingStatus.IN_PROGRESS && booking?.status !== BookingStatus.COMPLETED;
  const when = `${formatUtcTime(slot.startTime)}–${formatUtcTime(slot.endTime)} UTC`;
  return (
    <li className="board-case" data-slot-id={String(slot.id)}>
      <div className="board-when" id={`case-${slot.id}`} tabIndex={-1}>
        <strong>{when}</strong>
        <span className={`badge badge-${state.css}`} data-testid="case-state">
          {state.word}
        </span>
      </div>
      <div className="board-what">
        <strong>{slot.procedureType}</strong> · {slot.doctor?.name}
        {booking && ACTIVE.has(booking.status) && <> · patient {booking.patientId}</>}
        {booking?.actualStartTime && <span className="small muted"> · started {formatUtcTime(booking.actualStartTime)}</span>}
        {booking?.actualEndTime && <span className="small muted"> · ended {formatUtcTime(booking.actualEndTime)}</span>}
        {booking?.overrun && booking.overrun.seconds > 0n && (
          <span className="small overrun"> · overran by {String(booking.overrun.seconds / 60n)} min</span>
        )}
      </div>
      <div className="board-actions">
        {steps.map((s) => (
          <button
            key={s.step}
            type="button"
            className={`button ${s.step === "noShow" ? "" : "primary"}`}
            disabled={busy}
            onClick={() => props.onStep(s.step, s.label)}
            aria-describedby={`case-${slot.id}`}
          >
            {s.label}
          </button>
        ))}
        {canCancelSlot && !isCancelling && (
          <button type="button" className="button" disabled={busy} onClick={props.onAskCancel} aria-describedby={`case-${slot.id}`}>
            Cancel slot…
          </button>
        )}
      </div>
      {isCancelling && <CancelSlotForm slotId={slot.id} busy={busy} onKeep={props.onKeep} onCancel={props.onCancel} />}
    </li>
  );
}

function CancelSlotForm(props: {
  slotId: bigint;
  busy: boolean;
  onKeep: () => void;
  onCancel: (reason: string, note: string) => void;
}) {
  const [reason, setReason] = useState<string>(SLOT_CANCEL_REASONS[0]);
  const [note, setNote] = useState("");
  const id = `cancel-slot-${props.slotId}`;
  useEffect(() => {
    document.getElementById(`${id}-reason`)?.focus();
  }, [id]);
  return (
    <form
      className="confirm board-cancel"
      aria-labelledby={`${id}-title`}
      onSubmit={(e) => {
        e.preventDefault();
        props.onCancel(reason, note);
      }}
    >
      <h4 id={`${id}-title`}>Cancel slot #{String(props.slotId)}</h4>
      <p className="small">Its booking, if any, is cancelled too, and the patient sees why.</p>
      <div className="row-2">
        <div className="field">
          <label htmlFor={`${id}-reason`}>Reason</label>
          <select id={`${id}-reason`} value={reason} onChange={(e) => setReason(e.target.value)}>
            {SLOT_CANCEL_REASONS.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-note`}>Note (optional)</label>
          <input id={`${id}-note`} value={note} maxLength={400} onChange={(e) => setNote(e.target.value)} />
        </div>
      </div>
      <div className="actions">
        <button type="submit" className="button danger" disabled={props.busy}>
          Cancel this slot
        </button>
        <button type="button" className="button" onClick={props.onKeep}>
          Keep the slot
        </button>
      </div>
    </form>
  );
}
