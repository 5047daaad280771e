import { useState } from "react";
import { signOut, useAuth } from "../session";
import { TokenForm } from "../SignIn";
import { AuditTrail } from "./AuditTrail";
import { BookingsReport } from "./BookingsReport";
import { DayBoard } from "./DayBoard";
import { Inventory } from "./Inventory";
import { Schedule } from "./Schedule";
import { SeedPanel } from "./SeedPanel";

const TABS = [
  { id: "schedule", label: "Schedule" },
  { id: "board", label: "Day board" },
  { id: "bookings", label: "Bookings" },
  { id: "inventory", label: "Inventory" },
  { id: "audit", label: "Audit trail" },
  { id: "data", label: "Demo data" },
] as const;
type TabId = (typeof TABS)[number]["id"];

export function AdminPage() {
  const { session } = useAuth();
  if (session?.role !== "admin") {
    return (
      <div className="page">
        <section className="intro" aria-labelledby="admin-title">
          <h1 id="admin-title">Command center</h1>
          <p className="muted">For hospital administrators: publish slots, follow every booking, read the audit trail.</p>
        </section>
        <section className="panel narrow" aria-labelledby="admin-gate-title">
          <h2 id="admin-gate-title">Administrators only</h2>
          {session ? (
            <>
              <p role="alert" className="alert alert-error">
                {`The command center is for hospital administrators. You are signed in as ${session.role} ${session.subject}, so it is not open to you.`}
              </p>
              <button type="button" className="button" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : (
            <>
              <p>Sign in with your admin token to continue.</p>
              <TokenForm role="admin" />
            </>
          )}
        </section>
      </div>
    );
  }
  return <CommandCenter />;
}

function CommandCenter() {
  const [tab, setTab] = useState<TabId>("schedule");

  function onKey(event: React.KeyboardEvent, index: number) {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = TABS[(index + step + TABS.length) % TABS.length];
    setTab(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  }

  return (
    <div className="page">
      <section className="intro" aria-labelledby="admin-title">
        <h1 id="admin-title">Command center</h1>
        <p className="muted">Publish slots, watch the theatres' day, and follow every booking.</p>
      </section>
      <div role="tablist" aria-label="Command center sections" className="tabs">
        {TABS.map((t, i) => (
          <button
            key={t.id}
            id={`tab-${t.id}`}
            role="tab"
            type="button"
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            onClick={() => setTab(t.id)}
            onKeyDown={(e) => onKey(e, i)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
        {/* Each tab mounts afresh when chosen, so it always shows the data as it is now (after a reset too). */}
        {tab === "schedule" && <Schedule />}
        {tab === "board" && <DayBoard />}
        {tab === "bookings" && <BookingsReport />}
        {tab === "inventory" && <Inventory />}
        {tab === "audit" && <AuditTrail />}
        {tab === "data" && <SeedPanel />}
      </div>
    </div>
  );
}
