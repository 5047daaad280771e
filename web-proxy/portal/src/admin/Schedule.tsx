import { useCallback, useEffect, useState } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { dayWindow, formatTime, localDay, toDate } from "../format";
import type { Room, Slot } from "../gen/orflow/v1/resources_pb";
import { CreateSlotForm } from "./CreateSlotForm";
import { DayTimeline } from "./DayTimeline";

async function slotsOfDay(day: string): Promise<Slot[]> {
  const window = dayWindow(day);
  const slots: Slot[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listSlots(
      { pageSize: 100, pageToken, windowStart: window.start, windowEnd: window.end },
      { timeoutMs: 10_000 },
    );
    slots.push(...reply.slots);
    pageToken = reply.nextPageToken;
  } while (pageToken && slots.length < 1000);
  return slots.sort((a, b) => toDate(a.startTime).getTime() - toDate(b.startTime).getTime());
}

export function Schedule() {
  const [day, setDay] = useState(() => localDay(new Date(Date.now() + 24 * 3600 * 1000)));
  const [rooms, setRooms] = useState<Room[]>([]);
  const [slots, setSlots] = useState<Slot[]>([]);
  const [error, setError] = useState("");
  const [highlight, setHighlight] = useState<bigint | null>(null);

  const load = useCallback(async (which: string) => {
    try {
      const [roomReply, daySlots] = await Promise.all([adminClient.listRooms({}), slotsOfDay(which)]);
      setRooms(roomReply.rooms);
      setSlots(daySlots);
      setError("");
    } catch (err) {
      setError(friendlyError(err).message);
    }
  }, []);

  useEffect(() => {
    void load(day);
  }, [day, load]);

  function onCreated(slot: Slot) {
    const created = localDay(toDate(slot.startTime));
    setHighlight(slot.id);
    if (created === day) void load(day);
    else setDay(created);
  }

  return (
    <div className="schedule">
      <CreateSlotForm rooms={rooms} defaultDay={day} onCreated={onCreated} />
      <section className="panel day-view" aria-labelledby="day-title">
        <div className="results-head">
          <h2 id="day-title">Day view</h2>
          <div className="field inline">
            <label htmlFor="day-view-date">Day</label>
            <input id="day-view-date" type="date" value={day} onChange={(e) => e.target.value && setDay(e.target.value)} />
          </div>
        </div>
        {error && (
          <p className="alert alert-error" role="alert">
            {error}
          </p>
        )}
        <DayTimeline rooms={rooms} slots={slots} highlight={highlight} />
        <h3 className="sub">Slots on this day ({slots.length})</h3>
        <div className="table-wrap">
          <table className="table" aria-label="Slots on this day">
            <thead>
              <tr>
                <th scope="col">Slot</th>
                <th scope="col">Time</th>
                <th scope="col">Room</th>
                <th scope="col">Procedure</th>
                <th scope="col">Surgeon</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {slots.map((s) => (
                <tr key={String(s.id)} className={highlight === s.id ? "row-new" : undefined} data-slot-id={String(s.id)}>
                  <td>#{String(s.id)}</td>
                  <td>
                    {formatTime(s.startTime)}–{formatTime(s.endTime)}
                  </td>
                  <td>{s.room?.name}</td>
                  <td>{s.procedureType}</td>
                  <td>{s.doctor?.name}</td>
                  <td>
                    <span className={`badge ${s.available ? "badge-free" : "badge-confirmed"}`}>
                      {s.available ? "Free" : "Booked"}
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
