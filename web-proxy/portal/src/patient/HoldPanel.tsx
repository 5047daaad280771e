import { useEffect, useRef, useState } from "react";
import { bookingClient } from "../api";
import { friendlyError } from "../errors";
import { countdown, formatRange, formatZonedTime, toDate, zoneOf } from "../format";
import { BookingStatus, FailureReason, type Booking } from "../gen/orflow/v1/booking_pb";
import { ErrorReason } from "../gen/orflow/v1/error_reason_pb";
import type { Slot } from "../gen/orflow/v1/resources_pb";

const STATUS_WORDS: Record<BookingStatus, string> = {
  [BookingStatus.UNSPECIFIED]: "Unknown",
  [BookingStatus.PENDING]: "On hold",
  [BookingStatus.CONFIRMED]: "CONFIRMED",
  [BookingStatus.FAILED]: "Not confirmed",
  [BookingStatus.CANCELLED]: "Cancelled",
  [BookingStatus.CHECKED_IN]: "Checked in",
  [BookingStatus.IN_PROGRESS]: "In surgery",
  [BookingStatus.COMPLETED]: "Completed",
  [BookingStatus.NO_SHOW]: "Missed",
};

/** Seconds before the hold runs out when the patient is warned (and offered the extension). */
export const WARN_AT_SECONDS = 30;

function newRequestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What a screen reader hears when the booking reaches each state (the panel's heading also takes focus). */
function statusAnnouncement(booking: Booking, slot: Slot): string {
  const what = `${slot.procedureType} with ${slot.doctor?.name ?? "the surgeon"}`;
  switch (booking.status) {
    case BookingStatus.PENDING:
      return `Slot held for you: ${what}, ${formatRange(slot.startTime, slot.endTime, zoneOf(slot.site))}. It is yours until ${formatZonedTime(booking.expireTime, zoneOf(slot.site))}; confirm to book it.`;
    case BookingStatus.CONFIRMED:
      return `Booked: ${what} is confirmed for you.`;
    case BookingStatus.CANCELLED:
      return "You cancelled this hold; the slot is free again.";
    case BookingStatus.FAILED:
      return "Your hold ran out before it was confirmed; the slot is free again.";
    default:
      return `Your booking is ${STATUS_WORDS[booking.status]}.`;
  }
}

export function HoldPanel(props: {
  booking: Booking;
  slot: Slot;
  onChange: (booking: Booking) => void;
  onDone: () => void;
  /** Says a message in the page's polite live region (it exists before the panel does, so it is heard). */
  announce: (message: string) => void;
}) {
  const { booking, slot, onChange, onDone, announce } = props;
  const [now, setNow] = useState(() => Date.now());
  const [working, setWorking] = useState(false);
  const [error, setError] = useState("");
  const [extended, setExtended] = useState(false);
  const [warned, setWarned] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);
  const [focusConfirm, setFocusConfirm] = useState(false);
  useEffect(() => {
    if (working || !focusConfirm) return;
    confirmButton.current?.focus();
    setFocusConfirm(false);
  }, [working, focusConfirm]);
  const isPending = booking.status === BookingStatus.PENDING;
  const left = toDate(booking.expireTime).getTime() - now;
  const isWarning = isPending && left > 0 && left <= WARN_AT_SECONDS * 1000;

  // Each new state moves focus to the panel's heading (Confirm is the next Tab stop) and is announced.
  useEffect(() => {
    heading.current?.focus();
    announce(statusAnnouncement(booking, slot));
  }, [booking.id, booking.status]);

  // Warn once before the hold runs out (WCAG 2.2.1), and again after an extension.
  useEffect(() => {
    if (!isWarning || warned) return;
    setWarned(true);
    announce(
      `${countdown(left)} left on your hold. Confirm now${extended ? "" : ", or extend the hold once for more time"}.`,
    );
  }, [isWarning, warned, extended, left, announce]);

  useEffect(() => {
    if (!isPending) return;
    const timer = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(timer);
  }, [isPending]);

  // When the countdown ends, ask the server: it reads an overdue hold as FAILED.
  useEffect(() => {
    if (!isPending || left > 0) return;
    const abort = new AbortController();
    bookingClient.getBooking({ bookingId: booking.id }, { signal: abort.signal }).then(
      (reply) => reply.booking && onChange(reply.booking),
      () => undefined,
    );
    return () => abort.abort();
  }, [isPending, left > 0, booking.id, onChange]);

  async function act(action: "confirm" | "cancel" | "extend") {
    setWorking(true);
    setError("");
    try {
      const request = { bookingId: booking.id };
      if (action === "extend") {
        const reply = await bookingClient.extendHold({ ...request, requestId: newRequestId() }, { timeoutMs: 10_000 });
        setExtended(true);
        setWarned(false);
        setFocusConfirm(true); // the extend button goes away: focus moves to the next step, not the body
        if (reply.booking) {
          onChange(reply.booking);
          announce(`Hold extended: it is yours until ${formatZonedTime(reply.booking.expireTime, zoneOf(slot.site))}. Confirm before then.`);
        }
        return;
      }
      const reply =
        action === "confirm"
          ? await bookingClient.confirmBooking(request, { timeoutMs: 10_000 })
          : await bookingClient.cancelBooking(request, { timeoutMs: 10_000 });
      if (reply.booking) onChange(reply.booking);
    } catch (err) {
      const friendly = friendlyError(err);
      if (friendly.reason === ErrorReason.HOLD_ALREADY_EXTENDED) setExtended(true);
      setError(friendly.message);
      announce(friendly.message);
      const fresh = await bookingClient.getBooking({ bookingId: booking.id }).catch(() => null);
      if (fresh?.booking) onChange(fresh.booking);
    } finally {
      setWorking(false);
    }
  }

  const expired = booking.failureReason === FailureReason.HOLD_EXPIRED;
  return (
    <section className={`hold hold-${BookingStatus[booking.status].toLowerCase()}`} aria-labelledby="hold-title">
      <div className="hold-head">
        <h2 id="hold-title" ref={heading} tabIndex={-1}>
          {isPending ? "Held for you" : "Your booking"} · #{String(booking.id)}
        </h2>
        <span className="status-badge" data-testid="booking-status">
          {STATUS_WORDS[booking.status]}
        </span>
      </div>
      <p>
        <strong>{slot.procedureType}</strong> with {slot.doctor?.name}, {slot.room?.name}
        <br />
        <span data-testid="hold-time">{formatRange(slot.startTime, slot.endTime, zoneOf(slot.site))}</span> · patient {booking.patientId}
      </p>
      {isPending && (
        <>
          <p className="countdown" role="timer" aria-live="off">
            Held for you for <strong>{countdown(left)}</strong> — confirm before the hold runs out.
          </p>
          {isWarning && (
            <p className="hold-warning" data-testid="hold-warning">
              Less than {WARN_AT_SECONDS} seconds left.{" "}
              {extended ? "Confirm now to keep the slot." : "Confirm now, or extend the hold once for more time."}
            </p>
          )}
          <div className="actions">
            <button
              ref={confirmButton}
              type="button"
              className="button primary"
              disabled={working}
              onClick={() => void act("confirm")}
            >
              Confirm booking
            </button>
            {!extended && (
              <button type="button" className="button" disabled={working} onClick={() => void act("extend")}>
                More time: extend hold
              </button>
            )}
            <button type="button" className="button" disabled={working} onClick={() => void act("cancel")}>
              Cancel hold
            </button>
          </div>
          {extended && <p className="muted small">Extended once (a hold can be extended only once).</p>}
        </>
      )}
      {booking.status === BookingStatus.CONFIRMED && <p role="status">Booked. The theatre team has your slot.</p>}
      {booking.status === BookingStatus.CANCELLED && <p role="status">You cancelled this hold; the slot is free again.</p>}
      {booking.status === BookingStatus.FAILED && (
        <p role="status">{expired ? "The hold ran out before it was confirmed; the slot is free again." : "This booking did not go through."}</p>
      )}
      {error && (
        <div className="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {!isPending && (
        <button type="button" className="link-button" onClick={onDone}>
          Book another slot
        </button>
      )}
    </section>
  );
}
