// The schedule: one site's day (ListSlots with site_id and day: the server finds the site's local day, 23 or 25
// hours when the clocks change), a timeline and a table of its slots, each editable and retirable.
import { Fragment, useCallback, useEffect, useRef, useState } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { dayIn, formatTimes, timeInput, toDate, toLocalDate, zonedTimestamp, zoneOf } from "../format";
import type { Doctor, Room, Site, Slot } from "../gen/orflow/v1/resources_pb";
import { SitePicker, useSites } from "../sites";
import { CreateSlotForm } from "./CreateSlotForm";
import { DayLength, DayTimeline } from "./DayTimeline";
import { EditForm, RetirePanel, type Values } from "./EditForms";
import { allDoctors } from "./Inventory";

/** One site's slots starting on its local `day` (retired ones left out, as patients never see them). */
export async function slotsOfSiteDay(siteId: bigint, day: string): Promise<Slot[]> {
  const slots: Slot[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listSlots({ pageSize: 200, pageToken, siteId, day: toLocalDate(day) }, { timeoutMs: 10_000 });
    slots.push(...reply.slots);
    pageToken = reply.nextPageToken;
  } while (pageToken && slots.length < 1000);
  return slots.sort((a, b) => toDate(a.startTime).getTime() - toDate(b.startTime).getTime());
}

/** Tomorrow on `zone`'s calendar (the schedule's default day: today's slots have mostly started). */
function tomorrowIn(zone: string): string {
  return dayIn(new Date(Date.now() + 24 * 3600 * 1000), zone);
}

function slotValues(slot: Slot): Values {
  const zone = zoneOf(slot.site);
  return {
    procedure_type: slot.procedureType,
    date: dayIn(toDate(slot.startTime), zone),
    start: timeInput(slot.startTime, zone),
    end: timeInput(slot.endTime, zone),
    "room.id": String(slot.room?.id ?? ""),
    "doctor.id": String(slot.doctor?.id ?? ""),
  };
}

/** The update_mask paths for the form's changed fields: a new date moves both ends. */
function slotPaths(changed: string[]): string[] {
  const paths = new Set<string>();
  for (const field of changed) {
    if (field === "date" || field === "start") paths.add("start_time");
    if (field === "date" || field === "end") paths.add("end_time");
    if (field === "room.id" || field === "doctor.id" || field === "procedure_type") paths.add(field);
  }
  return [...paths];
}

export function Schedule() {
  const { sites, error: sitesError } = useSites();
  const [siteId, setSiteId] = useState(0n);
  const site: Site | undefined = sites.find((s) => s.id === siteId);
  const zone = zoneOf(site);
  const [day, setDay] = useState("");
  const [rooms, setRooms] = useState<Room[]>([]);
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [slots, setSlots] = useState<Slot[]>([]);
  const [error, setError] = useState("");
  const [highlight, setHighlight] = useState<bigint | null>(null);
  const [open, setOpen] = useState<{ id: bigint; what: "edit" | "retire" } | null>(null);
  const [done, setDone] = useState("");

  useEffect(() => {
    if (!siteId && sites.length > 0) setSiteId(sites[0].id);
  }, [sites, siteId]);
  useEffect(() => {
    if (site) setDay((current) => current || tomorrowIn(site.timeZone));
  }, [site]);

  // Only the latest load lands: an earlier one (another site or day) that answers late is dropped.
  const latest = useRef(0);
  const load = useCallback(async (which: bigint, onDay: string) => {
    if (!which || !onDay) return;
    const ticket = ++latest.current;
    try {
      const [roomReply, daySlots, surgeons] = await Promise.all([
        adminClient.listRooms({}),
        slotsOfSiteDay(which, onDay),
        allDoctors(false),
      ]);
      if (ticket !== latest.current) return;
      setRooms(roomReply.rooms);
      setDoctors(surgeons);
      setSlots(daySlots);
      setError("");
    } catch (err) {
      if (ticket === latest.current) setError(friendlyError(err).message);
    }
  }, []);

  useEffect(() => {
    void load(siteId, day);
  }, [siteId, day, load]);

  function onCreated(slot: Slot) {
    const created = dayIn(toDate(slot.startTime), zoneOf(slot.site));
    setHighlight(slot.id);
    if (slot.site && slot.site.id !== siteId) setSiteId(slot.site.id);
    if (created === day) void load(siteId, day);
    else setDay(created);
  }

  function close(slotId: bigint, message = "") {
    setOpen(null);
    if (message) {
      setDone(message);
      void load(siteId, day);
    }
    document.getElementById(`slot-row-${slotId}`)?.focus();
  }

  async function saveSlot(slot: Slot, v: Values, changed: string[]): Promise<string> {
    const room = rooms.find((r) => String(r.id) === v["room.id"]);
    const target = zoneOf(sites.find((s) => s.id === room?.siteId) ?? slot.site);
    const start = zonedTimestamp(v.date, v.start, target);
    // An end at or before the start is the next morning (an overnight case).
    let end = zonedTimestamp(v.date, v.end, target);
    if (end.seconds <= start.seconds) end = { ...end, seconds: end.seconds + 86_400n };
    const reply = await adminClient.updateSlot(
      {
        slot: {
          id: slot.id,
          etag: slot.etag,
          procedureType: v.procedure_type,
          startTime: start,
          endTime: end,
          room: { id: BigInt(v["room.id"] || 0) },
          doctor: { id: BigInt(v["doctor.id"] || 0) },
        },
        updateMask: { paths: slotPaths(changed) },
      },
      { timeoutMs: 10_000 },
    );
    const saved = reply.slot ?? slot;
    return `Slot #${saved.id} saved: ${saved.procedureType}, ${formatTimes(saved.startTime, saved.endTime, zoneOf(saved.site))} in ${saved.room?.name}.`;
  }

  const roomOptions = rooms
    .filter((r) => !r.retireTime)
    .map((r) => ({ value: String(r.id), label: `${r.name} (${sites.find((s) => s.id === r.siteId)?.timeZone ?? "?"})` }));
  const doctorOptions = doctors.map((d) => ({ value: String(d.id), label: `${d.name} — ${d.specialty}` }));
  return (
    <div className="schedule">
      <CreateSlotForm rooms={rooms.filter((r) => !r.retireTime)} sites={sites} defaultDay={day} onCreated={onCreated} />
      <section className="panel day-view" aria-labelledby="day-title">
        <div className="results-head">
          <h2 id="day-title">Day view</h2>
          <div className="filter-row">
            <SitePicker id="day-view-site" sites={sites} value={siteId} onChange={setSiteId} />
            <div className="field inline">
              <label htmlFor="day-view-date">Day</label>
              <input id="day-view-date" type="date" value={day} onChange={(e) => e.target.value && setDay(e.target.value)} />
            </div>
          </div>
        </div>
        {site && day && <DayLength day={day} site={site} />}
        {(error || sitesError !== null) && (
          <p className="alert alert-error" role="alert">
            {error || friendlyError(sitesError).message}
          </p>
        )}
        <p className="visually-hidden" role="status" aria-live="polite" data-testid="schedule-announcer">
          {done}
        </p>
        {done && (
          <p className="alert alert-ok" aria-hidden="true">
            {done}
          </p>
        )}
        {day && (
          <DayTimeline rooms={rooms.filter((r) => r.siteId === siteId)} slots={slots} highlight={highlight} day={day} zone={zone} />
        )}
        <h3 className="sub">Slots on this day ({slots.length})</h3>
        <div className="table-wrap">
          <table className="table" aria-label="Slots on this day">
            <thead>
              <tr>
                <th scope="col">Slot</th>
                <th scope="col">Time ({zone})</th>
                <th scope="col">Room</th>
                <th scope="col">Procedure</th>
                <th scope="col">Surgeon</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {slots.map((s) => (
                <Fragment key={String(s.id)}>
                  <tr className={highlight === s.id ? "row-new" : undefined} data-slot-id={String(s.id)}>
                    <td>
                      <span id={`slot-row-${s.id}`} tabIndex={-1}>
                        #{String(s.id)}
                      </span>
                    </td>
                    <td data-testid="slot-times">{formatTimes(s.startTime, s.endTime, zoneOf(s.site))}</td>
                    <td>{s.room?.name}</td>
                    <td>{s.procedureType}</td>
                    <td>{s.doctor?.name}</td>
                    <td>
                      <span className={`badge ${s.cancelTime ? "badge-cancelled" : s.available ? "badge-free" : "badge-confirmed"}`}>
                        {s.cancelTime ? "Cancelled" : s.available ? "Free" : "Booked"}
                      </span>
                    </td>
                    <td className="row-actions">
                      {!s.cancelTime && (
                        <>
                          <button
                            type="button"
                            className="link-button"
                            aria-label={`Edit slot #${s.id}`}
                            aria-expanded={open?.id === s.id && open.what === "edit"}
                            onClick={() => setOpen({ id: s.id, what: "edit" })}
                          >
                            Edit…
                          </button>
                          <button
                            type="button"
                            className="link-button"
                            aria-label={`Retire slot #${s.id}`}
                            aria-expanded={open?.id === s.id && open.what === "retire"}
                            onClick={() => setOpen({ id: s.id, what: "retire" })}
                          >
                            Retire…
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                  {open?.id === s.id && (
                    <tr className="row-form">
                      <td colSpan={7}>
                        {open.what === "edit" ? (
                          <EditForm
                            id={`edit-slot-${s.id}`}
                            title={`Edit slot #${s.id}`}
                            initial={slotValues(s)}
                            fields={[
                              { name: "procedure_type", label: "Procedure" },
                              { name: "date", label: "Date", type: "date", hint: "The room's hospital's local date and times." },
                              { name: "start", label: "Start", type: "time" },
                              { name: "end", label: "End", type: "time" },
                              { name: "room.id", label: "Room", type: "select", options: roomOptions },
                              { name: "doctor.id", label: "Surgeon", type: "select", options: doctorOptions },
                            ]}
                            save={(v, changed) => saveSlot(s, v, changed)}
                            reload={async () => {
                              const fresh = (await slotClient.getSlot({ slotId: s.id }, { timeoutMs: 10_000 })).slot;
                              if (!fresh) return null;
                              setSlots((list) => list.map((x) => (x.id === fresh.id ? fresh : x)));
                              return slotValues(fresh);
                            }}
                            onSaved={(m) => close(s.id, m)}
                            onClose={() => close(s.id)}
                          />
                        ) : (
                          <RetirePanel
                            id={`retire-slot-${s.id}`}
                            kind="slot"
                            name={`Slot #${s.id}`}
                            retire={async (cancelBookings, note) => {
                              const reply = await adminClient.retireSlot(
                                { slotId: s.id, etag: s.etag, cancelBookings, note },
                                { timeoutMs: 10_000 },
                              );
                              return { cancelled: reply.cancelledBookings.length };
                            }}
                            reload={async () => {
                              const fresh = (await slotClient.getSlot({ slotId: s.id }, { timeoutMs: 10_000 })).slot;
                              if (fresh) setSlots((list) => list.map((x) => (x.id === fresh.id ? fresh : x)));
                            }}
                            onRetired={(m) => close(s.id, m)}
                            onClose={() => close(s.id)}
                          />
                        )}
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      </section>
    </div>
  );
}
