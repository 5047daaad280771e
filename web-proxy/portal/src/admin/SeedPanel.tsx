import { useState } from "react";
import { adminClient } from "../api";
import { friendlyError } from "../errors";

export function SeedPanel() {
  const [confirming, setConfirming] = useState(false);
  const [working, setWorking] = useState(false);
  const [result, setResult] = useState("");
  const [error, setError] = useState("");

  async function reset() {
    setWorking(true);
    setError("");
    try {
      const r = await adminClient.seedDatabase({}, { timeoutMs: 30_000 });
      setResult(
        `Demo data loaded: ${r.roomCount} rooms, ${r.doctorCount} surgeons, ${r.equipmentCount} equipment types, ${r.slotCount} slots.`,
      );
      setConfirming(false);
    } catch (err) {
      setError(friendlyError(err).message);
    } finally {
      setWorking(false);
    }
  }

  return (
    <section className="panel narrow" aria-labelledby="seed-title">
      <h2 id="seed-title">Reset to demo data</h2>
      <p>
        Replaces every room, surgeon, equipment type, slot and booking with the demo set. Use it for training and
        demonstrations only.
      </p>
      {!confirming ? (
        <button type="button" className="button danger" onClick={() => setConfirming(true)}>
          Reset demo data…
        </button>
      ) : (
        <div className="confirm" role="alertdialog" aria-labelledby="seed-confirm-title" aria-describedby="seed-confirm-text">
          <h3 id="seed-confirm-title">Delete everything and reload the demo set?</h3>
          <p id="seed-confirm-text">All bookings, including confirmed ones, will be removed. This cannot be undone.</p>
          <div className="actions">
            <button type="button" className="button danger" disabled={working} onClick={() => void reset()}>
              {working ? "Resetting…" : "Yes, reset everything"}
            </button>
            {/* Focus lands on the safe choice: Enter alone never wipes the data. */}
            <button type="button" className="button" disabled={working} onClick={() => setConfirming(false)} autoFocus>
              Keep my data
            </button>
          </div>
        </div>
      )}
      {result && (
        <p className="alert alert-ok" role="status">
          {result}
        </p>
      )}
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
