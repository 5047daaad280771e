import { useEffect, useState } from "react";
import { bookingClient } from "../api";
import { friendlyError } from "../errors";
import { countdown, formatRange, toDate } from "../format";
import { BookingStatus, FailureReason, type Booking } from "../gen/orflow/v1/booking_pb";
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

export function HoldPanel(props: {
  booking: Booking;
  slot: Slot;
  onChange: (booking: Booking) => void;
  onDone: () => void;
}) {
  const { booking, slot, onChange, onDone } = props;
  const [now, setNow] = useState(() => Date.now());
  const [working, setWorking] = useState(false);
  const [error, setError] = useState("");
  const isPending = booking.status === BookingStatus.PENDING;
  const left = toDate(booking.expireTime).getTime() - now;

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

  async function act(action: "confirm" | "cancel") {
    setWorking(true);
    setError("");
    try {
      const request = { bookingId: booking.id };
      const reply =
        action === "confirm"
          ? await bookingClient.confirmBooking(request, { timeoutMs: 10_000 })
          : await bookingClient.cancelBooking(request, { timeoutMs: 10_000 });
      if (reply.booking) onChange(reply.booking);
    } catch (err) {
      setError(friendlyError(err).message);
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
        <h2 id="hold-title">Your booking #{String(booking.id)}</h2>
        <span className="status-badge" data-testid="booking-status">
          {STATUS_WORDS[booking.status]}
        </span>
      </div>
      <p>
        <strong>{slot.procedureType}</strong> with {slot.doctor?.name}, {slot.room?.name}
        <br />
        {formatRange(slot.startTime, slot.endTime)} · patient {booking.patientId}
      </p>
      {isPending && (
        <>
          <p className="countdown" role="timer" aria-live="off">
            Held for you for <strong>{countdown(left)}</strong> — confirm before the hold runs out.
          </p>
          <div className="actions">
            <button type="button" className="button primary" disabled={working} onClick={() => void act("confirm")}>
              Confirm booking
            </button>
            <button type="button" className="button" disabled={working} onClick={() => void act("cancel")}>
              Cancel hold
            </button>
          </div>
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
