import { formatTime, toDate } from "../format";
import type { Room, Slot } from "../gen/orflow/v1/resources_pb";

/** One row per room, slots as blocks across the hours of the day (06:00–22:00, widened to fit). */
export function DayTimeline({ rooms, slots, highlight }: { rooms: Room[]; slots: Slot[]; highlight: bigint | null }) {
  const hours = slots.flatMap((s) => [toDate(s.startTime).getHours(), toDate(s.endTime).getHours() + 1]);
  const first = Math.min(6, ...hours);
  const last = Math.min(24, Math.max(22, ...hours));
  const span = (last - first) * 60;
  const offset = (d: Date) => ((d.getHours() - first) * 60 + d.getMinutes()) / span;
  const ticks = Array.from({ length: last - first + 1 }, (_, i) => first + i).filter((h) => h % 2 === 0);

  return (
    <div className="timeline" role="group" aria-label="Rooms' schedule for the day">
      <div className="timeline-scale" aria-hidden="true">
        {ticks.map((h) => (
          <span key={h} style={{ left: `${((h - first) / (last - first)) * 100}%` }}>
            {String(h).padStart(2, "0")}:00
          </span>
        ))}
      </div>
      {rooms.map((room) => {
        const own = slots.filter((s) => s.room?.id === room.id);
        return (
          <div className="timeline-row" key={String(room.id)}>
            <div className="timeline-room">{room.name}</div>
            <ul className="timeline-track" aria-label={`${room.name}: ${own.length} slots`}>
              {own.map((s) => {
                const start = toDate(s.startTime);
                const left = Math.max(0, offset(start));
                const width = Math.max(0.02, Math.min(1, offset(toDate(s.endTime))) - left);
                return (
                  <li
                    key={String(s.id)}
                    className={`block ${s.available ? "block-free" : "block-booked"} ${highlight === s.id ? "block-new" : ""}`}
                    style={{ left: `${left * 100}%`, width: `${width * 100}%` }}
                    title={`${s.procedureType} · ${s.doctor?.name} · ${formatTime(s.startTime)}–${formatTime(s.endTime)}`}
                  >
                    <span className="block-label">
                      {formatTime(s.startTime)} {s.procedureType}
                    </span>
                    <span className="visually-hidden">
                      {" "}
                      with {s.doctor?.name} until {formatTime(s.endTime)}, {s.available ? "free" : "booked"}
                    </span>
                  </li>
                );
              })}
            </ul>
          </div>
        );
      })}
      <p className="legend small">
        <span className="swatch block-free" aria-hidden="true" /> Free <span className="swatch block-booked" aria-hidden="true" />{" "}
        Booked or on hold
      </p>
    </div>
  );
}
