import { useCallback, useEffect, useMemo, useState, type ReactNode } from "react";
import { bookingClient } from "../api";
import { friendlyError } from "../errors";
import { BookingStatus, type Booking } from "../gen/orflow/v1/booking_pb";
import { ErrorReason } from "../gen/orflow/v1/error_reason_pb";
import type { Doctor, Slot } from "../gen/orflow/v1/resources_pb";
import { askToSignIn, useAuth } from "../session";
import { useSites } from "../sites";
import { useLiveSlots } from "../useLiveSlots";
import { DoctorFinder } from "./DoctorFinder";
import { HoldPanel } from "./HoldPanel";
import { SlotCard } from "./SlotCard";

/** True while the viewport matches `query` (follows resizes and rotations). */
function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const list = window.matchMedia(query);
    const onChange = () => setMatches(list.matches);
    list.addEventListener("change", onChange);
    onChange();
    return () => list.removeEventListener("change", onChange);
  }, [query]);
  return matches;
}

/** The search panel: a side column on wide screens; on a phone a closed disclosure, so the slots are on the first screen. */
function FiltersPanel({ narrow, active, children }: { narrow: boolean; active: boolean; children: ReactNode }) {
  if (!narrow) {
    return (
      <aside className="panel filters" aria-labelledby="filters-title">
        <h2 id="filters-title">Search</h2>
        {children}
      </aside>
    );
  }
  return (
    <details className="panel filters filters-compact" open={active || undefined}>
      <summary>
        <h2 id="filters-title">Search</h2>
        <span className="muted small">surgeon, procedure, date</span>
      </summary>
      {children}
    </details>
  );
}

/** Slot cards per page: a page is about two screens, not 67 cards and 10,000 px. */
export const SLOTS_PER_PAGE = 10;

function newRequestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function PatientPage() {
  const { session } = useAuth();
  const [doctor, setDoctor] = useState<Doctor | null>(null);
  const [procedure, setProcedure] = useState("");
  const [day, setDay] = useState("");
  const [siteId, setSiteId] = useState(0n);
  const { sites } = useSites();
  const [booking, setBooking] = useState<{ booking: Booking; slot: Slot } | null>(null);
  const [busySlot, setBusySlot] = useState<bigint | null>(null);
  const [error, setError] = useState<string>("");
  const [holdMessage, setHoldMessage] = useState("");
  // The same words twice in a row would not be heard again: a zero-width space makes each one new.
  const announce = useCallback((message: string) => setHoldMessage((m) => (m.endsWith(message) ? `\u200b${message}` : message)), []);

  const filter = useMemo(
    () => ({ procedureType: procedure, doctorId: doctor?.id ?? 0n, siteId, day }),
    [procedure, doctor, siteId, day],
  );
  const narrow = useMediaQuery("(max-width: 860px)");
  const live = useLiveSlots(filter, booking?.slot.id ?? busySlot);
  const [page, setPage] = useState(0);
  useEffect(() => setPage(0), [filter]);
  const pageCount = Math.max(1, Math.ceil(live.slots.length / SLOTS_PER_PAGE));
  const shownPage = Math.min(page, pageCount - 1); // the live list can shrink under the page being read
  const shown = live.slots.slice(shownPage * SLOTS_PER_PAGE, (shownPage + 1) * SLOTS_PER_PAGE);
  function turnTo(next: number) {
    setPage(next);
    const title = document.getElementById("slots-title");
    title?.focus();
    title?.scrollIntoView({ block: "start" });
  }
  const procedures = useMemo(
    () => [...new Set([...live.slots.map((s) => s.procedureType), procedure].filter(Boolean))].sort(),
    [live.slots, procedure],
  );

  async function book(slot: Slot) {
    setError("");
    if (!session) return askToSignIn("Sign in to book a slot. Browsing needs no sign-in.", "#/");
    if (session.role !== "patient") {
      setError("Booking here is for patients: sign out, then sign in as a patient.");
      return;
    }
    setBusySlot(slot.id);
    try {
      // No patient_id: the server books for the patient the token names.
      const reply = await bookingClient.createBooking(
        { slotId: slot.id, requestId: newRequestId() },
        { timeoutMs: 10_000 },
      );
      if (reply.booking) setBooking({ booking: reply.booking, slot });
    } catch (err) {
      const friendly = friendlyError(err);
      setError(friendly.message);
      if (friendly.reason === ErrorReason.SLOT_TAKEN || friendly.reason === ErrorReason.SLOT_NOT_FOUND) live.drop(slot.id);
    } finally {
      setBusySlot(null);
    }
  }

  return (
    <div className="page">
      <section className="intro" aria-labelledby="patient-title">
        <h1 id="patient-title">Book an operating-room slot</h1>
        <p className="muted">Find a surgeon, pick a time that suits, and confirm while we hold it for you.</p>
      </section>

      <div className="layout">
        <FiltersPanel narrow={narrow} active={Boolean(doctor || procedure || day || siteId)}>
          {session?.role === "patient" ? (
            <p className="signed-in" data-testid="signed-in-patient">
              Booking as patient <strong className="patient-id">{session.subject}</strong> ·{" "}
              <a href="#/my-bookings">My bookings</a>
            </p>
          ) : (
            <p className="signed-in">
              Browse freely — <a href="#/sign-in">sign in to book a slot</a>.
            </p>
          )}
          <DoctorFinder selected={doctor} onSelect={setDoctor} />
          <div className="field">
            <label htmlFor="procedure">Procedure</label>
            <select id="procedure" value={procedure} onChange={(e) => setProcedure(e.target.value)}>
              <option value="">Any procedure</option>
              {procedures.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="site">Hospital</label>
            <select id="site" value={String(siteId)} onChange={(e) => setSiteId(BigInt(e.target.value))}>
              <option value="0">Any hospital</option>
              {sites.map((s) => (
                <option key={String(s.id)} value={String(s.id)}>
                  {s.displayName || s.name} ({s.timeZone})
                </option>
              ))}
            </select>
          </div>
          <div className="field">
            <label htmlFor="day">Date</label>
            <input id="day" type="date" value={day} aria-describedby="day-hint" onChange={(e) => setDay(e.target.value)} />
            <p className="small muted" id="day-hint">
              Times are each hospital's local time.
            </p>
          </div>
          {(doctor || procedure || day || siteId !== 0n) && (
            <button
              type="button"
              className="link-button"
              onClick={() => {
                setDoctor(null);
                setProcedure("");
                setDay("");
                setSiteId(0n);
              }}
            >
              Clear filters
            </button>
          )}
        </FiltersPanel>

        <section className="results" aria-labelledby="slots-title">
          {booking && (
            <HoldPanel
              booking={booking.booking}
              slot={booking.slot}
              onChange={(b) => {
                setBooking({ booking: b, slot: booking.slot });
                // An expired hold is free at once on the server, before any worker announces it.
                if (b.status === BookingStatus.FAILED) live.reload();
              }}
              onDone={() => {
                setBooking(null);
                document.getElementById("slots-title")?.focus();
              }}
              announce={announce}
            />
          )}
          <p className="visually-hidden" role="status" aria-live="polite" data-testid="hold-announcer">
            {holdMessage}
          </p>
          <div className="results-head">
            <h2 id="slots-title" tabIndex={-1}>
              Available slots
            </h2>
            <span className={`live live-${live.state}`} role="status">
              {live.state === "live" ? "Live" : live.state === "connecting" ? "Connecting…" : "Reconnecting…"}
            </span>
          </div>
          {error && (
            <div className="alert alert-error" role="alert">
              {error}
            </div>
          )}
          {live.loadError !== null && (
            <div className="alert alert-error" role="alert">
              {friendlyError(live.loadError).message}
            </div>
          )}
          <p className="muted" aria-live="polite">
            {live.slots.length === 1 ? "1 slot available" : `${live.slots.length} slots available`}
            <span className="visually-hidden"> {live.announcement}</span>
          </p>
          {live.slots.length === 0 ? (
            <p className="empty">No free slots match. Try another date, procedure or surgeon.</p>
          ) : (
            <>
              <ul className="slot-list" aria-label={`Available slots, page ${shownPage + 1} of ${pageCount}`}>
                {shown.map((slot) => (
                  <SlotCard key={String(slot.id)} slot={slot} busy={busySlot === slot.id} onBook={() => void book(slot)} />
                ))}
              </ul>
              {pageCount > 1 && (
                <nav className="pager" aria-label="Slot pages">
                  <button type="button" className="button" disabled={shownPage === 0} onClick={() => turnTo(shownPage - 1)}>
                    Previous
                  </button>
                  <span data-testid="slot-page">
                    Page {shownPage + 1} of {pageCount}
                    <span className="muted small">
                      {" "}
                      (slots {shownPage * SLOTS_PER_PAGE + 1}–{shownPage * SLOTS_PER_PAGE + shown.length} of {live.slots.length})
                    </span>
                  </span>
                  <button
                    type="button"
                    className="button"
                    disabled={shownPage >= pageCount - 1}
                    onClick={() => turnTo(shownPage + 1)}
                  >
                    Next
                  </button>
                </nav>
              )}
            </>
          )}
        </section>
      </div>
    </div>
  );
}
