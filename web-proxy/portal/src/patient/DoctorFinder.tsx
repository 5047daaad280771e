import { useEffect, useState } from "react";
import { slotClient } from "../api";
import { friendlyError } from "../errors";
import type { Doctor } from "../gen/orflow/v1/resources_pb";

/** Search surgeons by name or specialty (ListDoctors); choosing one filters the slots. */
export function DoctorFinder({ selected, onSelect }: { selected: Doctor | null; onSelect: (d: Doctor | null) => void }) {
  const [query, setQuery] = useState("");
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [error, setError] = useState("");

  useEffect(() => {
    const abort = new AbortController();
    const timer = setTimeout(() => {
      slotClient.listDoctors({ query: query.trim(), pageSize: 50 }, { signal: abort.signal, timeoutMs: 10_000 }).then(
        (reply) => {
          setDoctors(reply.doctors);
          setError("");
        },
        (err: unknown) => !abort.signal.aborted && setError(friendlyError(err).message),
      );
    }, 200);
    return () => {
      clearTimeout(timer);
      abort.abort();
    };
  }, [query]);

  return (
    <fieldset className="field doctor-finder">
      <legend>Surgeon</legend>
      <label htmlFor="doctor-query" className="visually-hidden">
        Find a surgeon by name or specialty
      </label>
      <input
        id="doctor-query"
        type="search"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        placeholder="Name or specialty"
      />
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <ul className="doctor-list" aria-label="Surgeons">
        <li>
          <button type="button" aria-pressed={selected === null} onClick={() => onSelect(null)}>
            Any surgeon
          </button>
        </li>
        {doctors.map((d) => (
          <li key={String(d.id)}>
            <button type="button" aria-pressed={selected?.id === d.id} onClick={() => onSelect(d)}>
              <span>{d.name}</span>
              <span className="muted small">{d.specialty}</span>
            </button>
          </li>
        ))}
      </ul>
    </fieldset>
  );
}
