// The signed-in patient's own bookings (ListPatientBookings: the server reads the patient from the token).
import { useEffect, useState } from "react";
import { bookingClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { formatDay, formatRange, formatTime } from "../format";
import { BookingStatus, type Booking } from "../gen/orflow/v1/booking_pb";
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
              </tr>
            </thead>
            <tbody>
              {bookings.map((b) => {
                const slot = slots.get(String(b.slotId));
                return (
                  <tr key={String(b.id)} data-booking-id={String(b.id)}>
                    <td>#{String(b.id)}</td>
                    <td>
                      <span className={`badge badge-${BookingStatus[b.status].toLowerCase()}`}>{STATUS_WORDS[b.status]}</span>
                    </td>
                    <td>
                      {slot ? (
                        <>
                          <strong>{slot.procedureType}</strong> with {slot.doctor?.name}, {slot.room?.name}
                          <br />
                          <span className="small">{formatRange(slot.startTime, slot.endTime)}</span>
                        </>
                      ) : (
                        `Slot #${String(b.slotId)}`
                      )}
                    </td>
                    <td className="small">
                      {formatDay(b.createTime)} {formatTime(b.createTime)}
                    </td>
                  </tr>
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
