// Dates and times as people read them. A slot or booking is shown on its site's wall clock (Site.time_zone,
// which every Slot and Booking carries), named, never in the browser's own zone: a scheduler in another city,
// or anyone on the day the clocks change, must see what the theatre sees.
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { LocalDate, Site } from "./gen/orflow/v1/resources_pb";

/** The zone for a site; UTC (and named so) if a server older than sites sent none. */
export function zoneOf(site: Site | undefined): string {
  return site?.timeZone || "UTC";
}

const formats = new Map<string, Intl.DateTimeFormat>();

function formatter(locale: string | undefined, zone: string, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale}|${zone}|${JSON.stringify(options)}`;
  let found = formats.get(key);
  if (!found) {
    found = new Intl.DateTimeFormat(locale, { ...options, timeZone: zone });
    formats.set(key, found);
  }
  return found;
}

// One clock everywhere, the 24-hour one theatres use (the day view's axis too): "08:00", never "08:00 AM".
const TIME: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
const DAY: Intl.DateTimeFormatOptions = { weekday: "short", day: "numeric", month: "short", year: "numeric" };

export function toDate(ts: Timestamp | undefined): Date {
  return ts ? timestampDate(ts) : new Date(0);
}

/** "Sun, 28 Mar 2027": the calendar day in `zone`. */
export function formatDay(ts: Timestamp | undefined, zone: string): string {
  return formatter(undefined, zone, DAY).format(toDate(ts));
}

/** "08:00": the wall-clock time in `zone`. */
export function formatTime(ts: Timestamp | Date | undefined, zone: string): string {
  return formatter(undefined, zone, TIME).format(ts instanceof Date ? ts : toDate(ts));
}

// An abbreviation is the locale's: en-US writes London's summer time "GMT+1" where en-GB writes "BST", and only
// en-IN writes India's "IST". The browser's own locale first, then English locales whose people live there.
const ABBREVIATION_LOCALES = [undefined, "en-GB", "en-IN", "en-US", "en-AU", "en-CA", "en-NZ", "en-ZA", "en-IE"];

/** "BST", "GMT", "IST", "CET"; a "GMT+x" offset only when no locale has a name for it. */
export function zoneAbbreviation(ts: Timestamp | Date | undefined, zone: string): string {
  const when = ts instanceof Date ? ts : toDate(ts);
  let fallback = "";
  for (const locale of ABBREVIATION_LOCALES) {
    const name = formatter(locale, zone, { timeZoneName: "short" })
      .formatToParts(when)
      .find((p) => p.type === "timeZoneName")?.value;
    if (!name) continue;
    if (!/^(GMT|UTC)[+-−]/.test(name)) return name;
    fallback ||= name;
  }
  return fallback || zone;
}

/** "08:00 BST". */
export function formatZonedTime(ts: Timestamp | Date | undefined, zone: string): string {
  return `${formatTime(ts, zone)} ${zoneAbbreviation(ts, zone)}`;
}

/** "08:00–10:00 BST", or "00:30 GMT–03:30 BST" across a clock change. */
export function formatTimes(start: Timestamp | undefined, end: Timestamp | undefined, zone: string): string {
  const [a, b] = [zoneAbbreviation(start, zone), zoneAbbreviation(end, zone)];
  return a === b
    ? `${formatTime(start, zone)}–${formatTime(end, zone)} ${a}`
    : `${formatTime(start, zone)} ${a}–${formatTime(end, zone)} ${b}`;
}

/** "Sun, 28 Mar 2027, 00:30 GMT–03:30 BST (Europe/London)": the slot's times on its site's clock, zone named. */
export function formatRange(start: Timestamp | undefined, end: Timestamp | undefined, zone: string): string {
  return `${formatDay(start, zone)}, ${formatTimes(start, end, zone)} (${zone})`;
}

/** "Sun, 28 Mar 2027, 09:12 BST": one instant (a booking's creation, a hold's deadline) on a site's clock. */
export function formatInstant(ts: Timestamp | undefined, zone: string): string {
  return `${formatDay(ts, zone)}, ${formatZonedTime(ts, zone)}`;
}

/** "Apollo Hospital · Asia/Kolkata". */
export function siteLabel(site: Site | undefined): string {
  return site ? `${site.displayName || site.name} · ${zoneOf(site)}` : "UTC";
}

/** The calendar day (an <input type=date> value, "2030-05-04") of `date` in `zone`. */
export function dayIn(date: Date, zone: string): string {
  const parts = formatter("en-CA", zone, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** "2030-05-04" for a date in the browser's own zone (the default of a date field before any site is known). */
export function localDay(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export function toLocalDate(day: string): LocalDate {
  const [year, month, dayOfMonth] = day.split("-").map(Number);
  return { $typeName: "orflow.v1.LocalDate", year, month, day: dayOfMonth };
}

/** Milliseconds `zone`'s wall clock is ahead of UTC at `instant`. */
function offsetAt(instant: number, zone: string): number {
  const parts = formatter("en-US", zone, {
    year: "numeric",
    month: "numeric",
    day: "numeric",
    hour: "numeric",
    minute: "numeric",
    second: "numeric",
    hourCycle: "h23",
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(instant / 1000) * 1000;
}

/**
 * The instant `zone`'s clock reads `time` on `day` ("2027-03-28", "09:00"). A time the clocks skip (01:30 on a
 * spring-forward day in London) is read with the offset before the change, so it lands just after it; a time
 * that happens twice is its first occurrence.
 */
export function zonedInstant(day: string, time: string, zone: string): Date {
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  const before = offsetAt(wall - 86_400_000, zone);
  const first = wall - before;
  const after = offsetAt(first, zone);
  if (after === before) return new Date(first);
  const second = wall - after; // the clocks changed between: read with the new offset, if the clock says so then
  return new Date(offsetAt(second, zone) === after ? second : first);
}

export function zonedTimestamp(day: string, time: string, zone: string): Timestamp {
  return timestampFromDate(zonedInstant(day, time, zone));
}

/** The site's day from its local midnight to the next: 23 hours on a spring-forward day, 25 on an autumn one. */
export function zonedDay(day: string, zone: string): { start: Date; end: Date; hours: number } {
  const [y, m, d] = day.split("-").map(Number);
  const next = new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
  const start = zonedInstant(day, "00:00", zone);
  const end = zonedInstant(next, "00:00", zone);
  return { start, end, hours: (end.getTime() - start.getTime()) / 3_600_000 };
}

/** "HH:MM" (an <input type=time> value) of an instant in `zone`. */
export function timeInput(ts: Timestamp | undefined, zone: string): string {
  return formatter("en-GB", zone, TIME).format(toDate(ts));
}

export function countdown(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
}
