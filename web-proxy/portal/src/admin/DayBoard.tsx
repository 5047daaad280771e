// The day board: one site's local day of cases per room (ListSlots with site_id and day, so a day the clocks
// change is 23 or 25 hours), each with its state and the one-click transitions it allows (CheckInBooking →
// StartBooking → CompleteBooking, or MarkBookingNoShow), and CancelSlot with a reason. Times are the site's
// wall clock, named. WatchSlots(site_id) keeps it live: a change to one slot re-reads that slot's bookings only.
import { useCallback, useEffect, useRef, useState } from "react";
import { adminClient, bookingClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { dayIn, formatTimes, formatZonedTime, toDate, zoneOf } from "../format";
import { BookingStatus, type Booking } from "../gen/orflow/v1/booking_pb";
import type { Room, Site, Slot } from "../gen/orflow/v1/resources_pb";
import { SlotChangeKind } from "../gen/orflow/v1/slot_service_pb";
import { SitePicker, useSites } from "../sites";
import { DayLength, DayTimeline } from "./DayTimeline";
import { slotsOfSiteDay } from "./Schedule";

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

/** The booking that speaks for one slot now (a live change names one slot: one call for it). */
async function caseOfSlot(slot: Slot): Promise<Case> {
  const reply = await adminClient.listBookings({ slotId: slot.id, pageSize: 20 }, { timeoutMs: 10_000 });
  return { slot, booking: caseOf(reply.bookings) };
}

/** Every slot's case for the day in one ListBookings (slot_ids), following its pages. */
async function casesOfSlots(slots: Slot[]): Promise<Case[]> {
  const bySlot = new Map<bigint, Booking[]>();
  let pageToken = "";
  if (slots.length > 0) {
    do {
      const reply = await adminClient.listBookings(
        { slotIds: slots.map((s) => s.id), pageSize: 1000, pageToken },
        { timeoutMs: 10_000 },
      );
      for (const booking of reply.bookings) {
        bySlot.set(booking.slotId, [...(bySlot.get(booking.slotId) ?? []), booking]);
      }
      pageToken = reply.nextPageToken;
    } while (pageToken);
  }
  return slots.map((slot) => ({ slot, booking: caseOf(bySlot.get(slot.id) ?? []) }));
}

async function loadDay(siteId: bigint, day: string): Promise<{ rooms: Room[]; cases: Case[] }> {
  const [roomReply, slots] = await Promise.all([adminClient.listRooms({}, { timeoutMs: 10_000 }), slotsOfSiteDay(siteId, day)]);
  const cases = await casesOfSlots(slots);
  return { rooms: roomReply.rooms.filter((r) => r.siteId === siteId), cases };
}

function byStart(a: Case, b: Case): number {
  return toDate(a.slot.startTime).getTime() - toDate(b.slot.startTime).getTime() || Number(a.slot.id - b.slot.id);
}

/** Kinds that may change the slot's own booking (the others change only its availability or timing). */
const BOOKING_KINDS = new Set([
  SlotChangeKind.CREATED,
  SlotChangeKind.BOOKED,
  SlotChangeKind.CONFIRMED,
  SlotChangeKind.RELEASED,
  SlotChangeKind.CASE_PROGRESSED,
  SlotChangeKind.CANCELLED,
]);

export function DayBoard() {
  const { sites, error: sitesError } = useSites();
  const [siteId, setSiteId] = useState(0n);
  const site: Site | undefined = sites.find((s) => s.id === siteId);
  const zone = zoneOf(site);
  const [day, setDay] = useState("");
  const [rooms, setRooms] = useState<Room[]>([]);
  const [cases, setCases] = useState<Case[]>([]);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [message, setMessage] = useState("");
  const [working, setWorking] = useState<bigint | null>(null);
  const [cancelling, setCancelling] = useState<bigint | null>(null);
  const [live, setLive] = useState<"connecting" | "live" | "reconnecting">("connecting");
  const [reloads, setReloads] = useState(0);
  const shown = useRef({ siteId, day, zone });
  shown.current = { siteId, day, zone };

  useEffect(() => {
    if (!siteId && sites.length > 0) setSiteId(sites[0].id);
  }, [sites, siteId]);
  useEffect(() => {
    if (site) setDay((current) => current || dayIn(new Date(), site.timeZone));
  }, [site]);

  useEffect(() => {
    if (!siteId || !day) return;
    let current = true;
    setLoading(true);
    loadDay(siteId, day).then(
      (loaded) => {
        if (!current) return;
        setRooms(loaded.rooms);
        setCases(loaded.cases);
        setError("");
        setLoading(false);
      },
      (err: unknown) => {
        if (!current) return;
        setError(friendlyError(err).message);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [siteId, day, reloads]);

  /** Puts one slot's current reading (and its booking) on the board, or takes it off if it left the day. */
  const refreshCase = useCallback(async (slot: Slot, withBooking: boolean) => {
    const onDay = dayIn(toDate(slot.startTime), zoneOf(slot.site)) === shown.current.day && slot.site?.id === shown.current.siteId;
    let fresh: Case | null = null;
    if (onDay && withBooking) fresh = await caseOfSlot(slot).catch(() => ({ slot }));
    setCases((list) => {
      const rest = list.filter((c) => c.slot.id !== slot.id);
      if (!onDay || slot.retireTime) return rest;
      const old = list.find((c) => c.slot.id === slot.id);
      return [...rest, fresh ?? { slot, booking: old?.booking }].sort(byStart);
    });
  }, []);

  // Live: WatchSlots for this site. Its snapshot holds only slots yet to start, so the board keeps its own
  // reading of the day and applies each change; a re-snapshot (the watcher fell behind) reloads the day.
  useEffect(() => {
    if (!siteId || !day) return;
    const abort = new AbortController();
    const run = async () => {
      let attempt = 0;
      while (!abort.signal.aborted) {
        let complete = false;
        try {
          for await (const change of slotClient.watchSlots({ siteId }, { signal: abort.signal })) {
            attempt = 0;
            if (change.kind === SlotChangeKind.SNAPSHOT_COMPLETE) {
              if (complete) setReloads((n) => n + 1);
              complete = true;
              setLive("live");
            } else if (change.kind === SlotChangeKind.SNAPSHOT) {
              continue;
            } else if (change.slot) {
              void refreshCase(change.slot, BOOKING_KINDS.has(change.kind));
            }
          }
        } catch {
          if (abort.signal.aborted) return;
        }
        setLive("reconnecting");
        await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt++, 10_000)));
        setReloads((n) => n + 1); // changes made while disconnected
      }
    };
    setLive("connecting");
    void run();
    return () => abort.abort();
  }, [siteId, day, refreshCase]);

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
      void refreshCase(c.slot, true);
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
        <div className="filter-row">
          <SitePicker id="board-site" sites={sites} value={siteId} onChange={setSiteId} />
          <div className="field inline">
            <label htmlFor="board-day">Day</label>
            <input id="board-day" type="date" value={day} onChange={(e) => e.target.value && setDay(e.target.value)} />
          </div>
          <span className={`live live-${live}`} role="status" data-testid="board-live">
            {live === "live" ? "Live" : live === "connecting" ? "Connecting…" : "Reconnecting…"}
          </span>
        </div>
      </div>
      {site && day && <DayLength day={day} site={site} />}
      <p className="visually-hidden" role="status" aria-live="polite" data-testid="board-announcer">
        {message}
      </p>
      {(error || sitesError !== null) && (
        <p className="alert alert-error" role="alert">
          {error || friendlyError(sitesError).message}
        </p>
      )}
      {!loading && cases.length === 0 && <p className="empty">No cases on this day.</p>}
      {day && cases.length > 0 && (
        <DayTimeline rooms={roomsWithCases} slots={cases.map((c) => c.slot)} highlight={null} day={day} zone={zone} />
      )}
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
                  zone={zone}
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
  zone: string;
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
  const when = formatTimes(slot.startTime, slot.endTime, props.zone);
  return (
    <li className="board-case" data-slot-id={String(slot.id)}>
      <div className="board-when" id={`case-${slot.id}`} tabIndex={-1}>
        <strong data-testid="case-time">{when}</strong>
        <span className={`badge badge-${state.css}`} data-testid="case-state">
          {state.word}
        </span>
      </div>
      <div className="board-what">
        <strong>{slot.procedureType}</strong> · {slot.doctor?.name}
        {booking && ACTIVE.has(booking.status) && <> · patient {booking.patientId}</>}
        {booking?.actualStartTime && <span className="small muted"> · started {formatZonedTime(booking.actualStartTime, props.zone)}</span>}
        {booking?.actualEndTime && <span className="small muted"> · ended {formatZonedTime(booking.actualEndTime, props.zone)}</span>}
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
