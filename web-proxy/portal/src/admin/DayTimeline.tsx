// One site's day as a timeline: rows per room, slots as blocks, on the site's clock. The axis is measured in
// real elapsed time from the site's local midnight, so a spring-forward day has 23 hours and an autumn one 25:
// the hour the clocks skip has no tick, the hour they repeat has two (told apart by the zone's abbreviation).
import { formatTime, formatTimes, formatZonedTime, toDate, zoneAbbreviation, zonedDay, zonedInstant } from "../format";
import type { Room, Site, Slot } from "../gen/orflow/v1/resources_pb";

const HOUR = 3_600_000;

/** Names the clock a day is shown on, and says when the day is not 24 hours long (the clocks change). */
export function DayLength({ day, site }: { day: string; site: Site }) {
  const zone = site.timeZone || "UTC";
  const whole = zonedDay(day, zone);
  const [from, to] = [zoneAbbreviation(whole.start, zone), zoneAbbreviation(new Date(whole.end.getTime() - 1), zone)];
  const change =
    whole.hours === 24
      ? ""
      : ` This day is ${whole.hours} hours long: the clocks go ${whole.hours < 24 ? "forward" : "back"} (${from} → ${to}).`;
  return (
    <p className="muted small day-length" data-testid="day-length">
      Times are {site.displayName || site.name}&apos;s local time: <strong>{zone}</strong> ({from}).
      {change && <strong className="clock-change">{change}</strong>}
    </p>
  );
}

/** The axis: local 06:00–22:00, widened to every slot, within the site's day (a slot may end after midnight). */
function axisOf(day: string, zone: string, slots: Slot[]): { start: number; end: number } {
  const whole = zonedDay(day, zone);
  const starts = slots.map((s) => toDate(s.startTime).getTime());
  const ends = slots.map((s) => toDate(s.endTime).getTime());
  const start = Math.max(whole.start.getTime(), Math.min(zonedInstant(day, "06:00", zone).getTime(), ...starts));
  const end = Math.max(zonedInstant(day, "22:00", zone).getTime(), ...ends);
  const fromMidnight = (t: number) => t - whole.start.getTime();
  // Whole hours from midnight (real hours), so ticks fall on the hour.
  return {
    start: whole.start.getTime() + Math.floor(fromMidnight(start) / HOUR) * HOUR,
    end: whole.start.getTime() + Math.ceil(fromMidnight(Math.min(end, whole.end.getTime() + 6 * HOUR)) / HOUR) * HOUR,
  };
}

export function DayTimeline(props: { rooms: Room[]; slots: Slot[]; highlight: bigint | null; day: string; zone: string }) {
  const { rooms, slots, highlight, day, zone } = props;
  const axis = axisOf(day, zone, slots);
  const span = axis.end - axis.start;
  const offset = (d: Date) => (d.getTime() - axis.start) / span;
  const ticks: { at: number; label: string; changed: boolean }[] = [];
  for (let at = axis.start, i = 0; at <= axis.end; at += HOUR, i++) {
    const changed = i > 0 && zoneAbbreviation(new Date(at), zone) !== zoneAbbreviation(new Date(at - HOUR), zone);
    ticks.push({ at, label: changed ? formatZonedTime(new Date(at), zone) : formatTime(new Date(at), zone), changed });
  }
  // Every second hour is labelled, and the hour the clocks change always is (its neighbours then are not, so
  // no two labels overlap).
  const nearChange = (i: number) => Boolean(ticks[i - 1]?.changed || ticks[i + 1]?.changed);
  const shown = ticks.filter((t, i) => t.changed || (i % 2 === 0 && !nearChange(i)));

  return (
    <div
      className="timeline"
      role="group"
      aria-label={`Rooms' schedule for the day, ${zone} time`}
      style={{ "--hours": span / HOUR } as React.CSSProperties}
    >
      <div className="timeline-scale" aria-hidden="true" data-testid="timeline-scale">
        {shown.map((t) => (
          <span key={t.at} className={t.changed ? "tick-change" : undefined} style={{ left: `${((t.at - axis.start) / span) * 100}%` }}>
            {t.label}
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
                const left = Math.max(0, offset(toDate(s.startTime)));
                const width = Math.max(0.02, Math.min(1, offset(toDate(s.endTime))) - left);
                const times = formatTimes(s.startTime, s.endTime, zone);
                return (
                  <li
                    key={String(s.id)}
                    className={`block ${s.available ? "block-free" : "block-booked"} ${highlight === s.id ? "block-new" : ""}`}
                    style={{ left: `${left * 100}%`, width: `${width * 100}%` }}
                    title={`${s.procedureType} · ${s.doctor?.name} · ${times}`}
                  >
                    <span className="block-label">
                      {formatTime(s.startTime, zone)} {s.procedureType}
                    </span>
                    <span className="visually-hidden">
                      {" "}
                      with {s.doctor?.name}, {times}, {s.available ? "free" : "booked"}
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
