// Dates and times as people read them, in the browser's time zone.
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" });
// One clock everywhere, the 24-hour one theatres use (the day view's axis too): "08:00", never "08:00 AM".
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });

export function toDate(ts: Timestamp | undefined): Date {
  return ts ? timestampDate(ts) : new Date(0);
}

export function formatDay(ts: Timestamp | undefined): string {
  return dayFormat.format(toDate(ts));
}

export function formatTime(ts: Timestamp | undefined): string {
  return timeFormat.format(toDate(ts));
}

export function formatRange(start: Timestamp | undefined, end: Timestamp | undefined): string {
  return `${formatDay(start)}, ${formatTime(start)}–${formatTime(end)}`;
}

/** "2030-05-04" (an <input type=date> value) for a date in the local time zone. */
export function localDay(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Local midnight of an <input type=date> value, and of the next day, as Timestamps. */
export function dayWindow(day: string): { start: Timestamp; end: Timestamp } {
  const [y, m, d] = day.split("-").map(Number);
  return { start: timestampFromDate(new Date(y, m - 1, d)), end: timestampFromDate(new Date(y, m - 1, d + 1)) };
}

export function localDateTime(day: string, time: string): Timestamp {
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  return timestampFromDate(new Date(y, m - 1, d, hh, mm));
}

export function countdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
