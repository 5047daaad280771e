import { useEffect, useRef, useState, type ReactNode } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import type { Doctor, Equipment, Room, Site } from "../gen/orflow/v1/resources_pb";
import { useSites } from "../sites";
import { EditForm, RetirePanel, type Values } from "./EditForms";
import { FieldError, type FieldProblems, fieldMessage, invalidProps, unplacedProblems } from "./fieldErrors";

/** Every surgeon, the retired ones too (shown as retired, with nothing to edit). */
export async function allDoctors(showRetired = true): Promise<Doctor[]> {
  const doctors: Doctor[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listDoctors({ pageSize: 100, pageToken, showRetired }, { timeoutMs: 10_000 });
    doctors.push(...reply.doctors);
    pageToken = reply.nextPageToken;
  } while (pageToken && doctors.length < 1000);
  return doctors;
}

interface FieldSpec {
  /** The request's field path, as the server names it in field violations ("name", "quantity"). */
  name: string;
  label: string;
  type?: "text" | "number";
  min?: number;
  max?: number;
  initial?: string;
  autoComplete?: string;
}

/** One "Add …" form: labelled inputs, the server's field violations beside them, a confirmation on success. */
function AddForm(props: {
  id: string;
  title: string;
  submitLabel: string;
  fields: FieldSpec[];
  /** Problems found before any call (input the request cannot carry, e.g. "2.5" units); the server checks the rest. */
  check?: (values: Record<string, string>) => FieldProblems;
  /** Calls the API; resolves to the confirmation to show. */
  create: (values: Record<string, string>) => Promise<string>;
}) {
  const blank = () => Object.fromEntries(props.fields.map((f) => [f.name, f.initial ?? ""]));
  const [values, setValues] = useState<Record<string, string>>(blank);
  const [fields, setFields] = useState<FieldProblems>({});
  const [error, setError] = useState("");
  const [created, setCreated] = useState("");
  const [working, setWorking] = useState(false);
  const first = useRef<HTMLInputElement>(null);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setWorking(true);
    setError("");
    setFields({});
    setCreated("");
    const local = props.check?.(values) ?? {};
    if (Object.keys(local).length > 0) {
      setFields(local);
      setWorking(false);
      return;
    }
    try {
      setCreated(await props.create(values));
      setValues(blank());
      first.current?.focus();
    } catch (err) {
      const friendly = friendlyError(err);
      setFields(friendly.fields);
      setError(friendly.message);
    } finally {
      setWorking(false);
    }
  }

  const known = new Set(props.fields.map((f) => f.name));
  const errorId = (field: string) => `${props.id}-${field}-error`;
  return (
    <form className="add-form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby={`${props.id}-title`}>
      <h3 id={`${props.id}-title`}>{props.title}</h3>
      {props.fields.map((f, i) => (
        <div className="field" key={f.name}>
          <label htmlFor={`${props.id}-${f.name}`}>{f.label}</label>
          <input
            id={`${props.id}-${f.name}`}
            ref={i === 0 ? first : undefined}
            type={f.type ?? "text"}
            inputMode={f.type === "number" ? "numeric" : undefined}
            min={f.min}
            max={f.max}
            step={f.type === "number" ? 1 : undefined}
            autoComplete={f.autoComplete ?? "off"}
            value={values[f.name]}
            onChange={(e) => setValues({ ...values, [f.name]: e.target.value })}
            {...invalidProps(fields, f.name, errorId(f.name))}
          />
          <FieldError id={errorId(f.name)} message={fieldMessage(fields, f.name, f.label)} />
        </div>
      ))}
      {unplacedProblems(fields, (f) => known.has(f)).map(([f, d]) => (
        <p className="field-error" key={f}>
          {f}: {d}
        </p>
      ))}
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      {created && (
        <p className="alert alert-ok" role="status">
          {created}
        </p>
      )}
      <button type="submit" className="button primary" disabled={working}>
        {working ? "Adding…" : props.submitLabel}
      </button>
    </form>
  );
}

/** An int32 for the request; out-of-range whole numbers still go to the server, which says what is allowed. */
function wholeNumber(text: string): number {
  const n = Number(text.trim());
  if (text.trim() === "" || !Number.isInteger(n)) return Number.NaN;
  return Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, n));
}

type Kind = "room" | "doctor" | "equipment";
type Open = { kind: Kind; id: bigint; what: "edit" | "retire" } | null;

function turnoverMinutes(room: Room): string {
  return room.turnover ? String(Number(room.turnover.seconds) / 60) : "";
}

function roomValues(room: Room): Values {
  return { name: room.name, site_id: String(room.siteId), turnover: turnoverMinutes(room) };
}

function siteName(sites: Site[], id: bigint): string {
  const site = sites.find((s) => s.id === id);
  return site ? `${site.displayName || site.name} (${site.timeZone})` : `site #${id}`;
}

/** One resource's row: its text, Edit… and Retire… while in service, and the open form beneath it. */
function ResourceRow(props: {
  label: string;
  retired: boolean;
  isNew?: boolean;
  open: "edit" | "retire" | null;
  onOpen: (what: "edit" | "retire") => void;
  children: ReactNode;
  form: ReactNode;
}) {
  return (
    <li className={`resource-row ${props.isNew ? "row-new" : ""}`} data-name={props.label}>
      <div className="resource-line">
        <span className="resource-text">
          {props.children}
          {props.retired && <span className="badge badge-cancelled"> Retired</span>}
        </span>
        {!props.retired && (
          <span className="row-actions">
            <button
              type="button"
              className="link-button"
              aria-expanded={props.open === "edit"}
              aria-label={`Edit ${props.label}`}
              onClick={() => props.onOpen("edit")}
            >
              Edit…
            </button>
            <button
              type="button"
              className="link-button"
              aria-expanded={props.open === "retire"}
              aria-label={`Retire ${props.label}`}
              onClick={() => props.onOpen("retire")}
            >
              Retire…
            </button>
          </span>
        )}
      </div>
      {props.form}
    </li>
  );
}

export function Inventory() {
  const [rooms, setRooms] = useState<Room[]>([]);
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [equipment, setEquipment] = useState<Equipment[]>([]);
  const [added, setAdded] = useState<Set<string>>(new Set());
  const [error, setError] = useState("");
  const [open, setOpen] = useState<Open>(null);
  const [done, setDone] = useState("");
  const { sites } = useSites();

  async function reloadAll(): Promise<{ rooms: Room[]; doctors: Doctor[]; equipment: Equipment[] }> {
    const [r, d, e] = await Promise.all([adminClient.listRooms({}), allDoctors(), adminClient.listEquipment({})]);
    setRooms(r.rooms);
    setDoctors(d);
    setEquipment(e.equipment);
    return { rooms: r.rooms, doctors: d, equipment: e.equipment };
  }

  useEffect(() => {
    reloadAll().catch((err: unknown) => setError(friendlyError(err).message));
  }, []);

  const mark = (key: string) => setAdded((keys) => new Set(keys).add(key));
  const isNew = (key: string) => (added.has(key) ? "row-new" : undefined);
  const openFor = (kind: Kind, id: bigint) => (open?.kind === kind && open.id === id ? open.what : null);
  function close(kind: Kind, id: bigint, message = "") {
    setOpen(null);
    if (message) setDone(message);
    document.querySelector<HTMLElement>(`[data-resource="${kind}-${id}"]`)?.focus();
  }

  async function createRoom(v: Record<string, string>): Promise<string> {
    const { room } = await adminClient.createRoom({ name: v.name }, { timeoutMs: 10_000 });
    if (!room) throw new Error("the server sent no room");
    setRooms((list) => [...list, room]);
    mark(`room-${room.id}`);
    return `Room “${room.name}” added.`;
  }

  async function createDoctor(v: Record<string, string>): Promise<string> {
    const { doctor } = await adminClient.createDoctor({ name: v.name, specialty: v.specialty }, { timeoutMs: 10_000 });
    if (!doctor) throw new Error("the server sent no surgeon");
    setDoctors((list) => [...list, doctor]);
    mark(`doctor-${doctor.id}`);
    return `Surgeon “${doctor.name}” added.`;
  }

  async function createEquipment(v: Record<string, string>): Promise<string> {
    const reply = await adminClient.createEquipment(
      { name: v.name, quantity: wholeNumber(v.quantity) },
      { timeoutMs: 10_000 },
    );
    const item = reply.equipment;
    if (!item) throw new Error("the server sent no equipment");
    setEquipment((list) => [...list, item]);
    mark(`equipment-${item.id}`);
    return `Equipment “${item.name}” added with ${item.quantity} ${item.quantity === 1 ? "unit" : "units"}.`;
  }

  async function saveRoom(room: Room, v: Values, changed: string[]): Promise<string> {
    const minutes = v.turnover.trim();
    const reply = await adminClient.updateRoom(
      {
        room: {
          id: room.id,
          etag: room.etag,
          name: v.name,
          siteId: BigInt(v.site_id || 0),
          turnover: minutes === "" ? undefined : { seconds: BigInt(Math.round(Number(minutes) * 60)) },
        },
        updateMask: { paths: changed },
      },
      { timeoutMs: 10_000 },
    );
    const saved = reply.room ?? room;
    setRooms((list) => list.map((r) => (r.id === saved.id ? saved : r)));
    return `Room “${saved.name}” saved.`;
  }

  async function saveDoctor(doctor: Doctor, v: Values, changed: string[]): Promise<string> {
    const reply = await adminClient.updateDoctor(
      { doctor: { id: doctor.id, etag: doctor.etag, name: v.name, specialty: v.specialty }, updateMask: { paths: changed } },
      { timeoutMs: 10_000 },
    );
    const saved = reply.doctor ?? doctor;
    setDoctors((list) => list.map((d) => (d.id === saved.id ? saved : d)));
    return `Surgeon “${saved.name}” saved.`;
  }

  async function saveEquipment(item: Equipment, v: Values, changed: string[]): Promise<string> {
    const reply = await adminClient.updateEquipment(
      {
        equipment: { id: item.id, etag: item.etag, name: v.name, quantity: wholeNumber(v.quantity) },
        updateMask: { paths: changed },
      },
      { timeoutMs: 10_000 },
    );
    const saved = reply.equipment ?? item;
    setEquipment((list) => list.map((e) => (e.id === saved.id ? saved : e)));
    return `Equipment “${saved.name}” saved: ${saved.quantity} ${saved.quantity === 1 ? "unit" : "units"}.`;
  }

  const siteOptions = sites.map((s) => ({ value: String(s.id), label: `${s.displayName || s.name} (${s.timeZone})` }));
  const checkQuantity = (v: Values): FieldProblems =>
    Number.isNaN(wholeNumber(v.quantity)) ? { quantity: "must be a whole number" } : {};
  const checkTurnover = (v: Values): FieldProblems =>
    v.turnover.trim() !== "" && !/^\d+$/.test(v.turnover.trim()) ? { turnover: "must be a whole number of minutes" } : {};

  return (
    <div className="grid-3">
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <p className="visually-hidden" role="status" aria-live="polite" data-testid="inventory-announcer">
        {done}
      </p>
      <section className="panel" aria-labelledby="rooms-title">
        <h2 id="rooms-title">Operating rooms ({rooms.length})</h2>
        {done && (
          <p className="alert alert-ok" aria-hidden="true">
            {done}
          </p>
        )}
        <ul className="plain-list" aria-label="Operating rooms">
          {rooms.map((r) => (
            <ResourceRow
              key={String(r.id)}
              label={r.name}
              retired={Boolean(r.retireTime)}
              isNew={Boolean(isNew(`room-${r.id}`))}
              open={openFor("room", r.id)}
              onOpen={(what) => setOpen({ kind: "room", id: r.id, what })}
              form={
                openFor("room", r.id) === "edit" ? (
                  <EditForm
                    id={`edit-room-${r.id}`}
                    title={`Edit ${r.name}`}
                    initial={roomValues(r)}
                    fields={[
                      { name: "name", label: "Room name" },
                      { name: "site_id", label: "Hospital", type: "select", options: siteOptions },
                      {
                        name: "turnover",
                        label: "Turnover (minutes)",
                        type: "number",
                        min: 0,
                        hint: "Cleaning and set-up after each case. Empty: the hospital-wide default.",
                      },
                    ]}
                    check={checkTurnover}
                    save={(v, changed) => saveRoom(r, v, changed)}
                    reload={async () => {
                      const fresh = (await reloadAll()).rooms.find((x) => x.id === r.id);
                      return fresh ? roomValues(fresh) : null;
                    }}
                    onSaved={(m) => close("room", r.id, m)}
                    onClose={() => close("room", r.id)}
                  />
                ) : openFor("room", r.id) === "retire" ? (
                  <RetirePanel
                    id={`retire-room-${r.id}`}
                    kind="operating room"
                    name={r.name}
                    retire={async (cancelBookings, note) => {
                      const reply = await adminClient.retireRoom(
                        { roomId: r.id, etag: r.etag, cancelBookings, note },
                        { timeoutMs: 10_000 },
                      );
                      await reloadAll();
                      return { cancelled: reply.cancelledBookings.length };
                    }}
                    reload={reloadAll}
                    onRetired={(m) => close("room", r.id, m)}
                    onClose={() => close("room", r.id)}
                  />
                ) : null
              }
            >
              <span data-resource={`room-${r.id}`} tabIndex={-1}>
                {r.name}
              </span>
              <span className="muted small">
                {" "}
                · {siteName(sites, r.siteId)}
                {r.turnover ? ` · turnover ${turnoverMinutes(r)} min` : ""}
              </span>
            </ResourceRow>
          ))}
        </ul>
        <AddForm
          id="add-room"
          title="Add a room"
          submitLabel="Add room"
          fields={[{ name: "name", label: "Room name" }]}
          create={createRoom}
        />
      </section>
      <section className="panel" aria-labelledby="surgeons-title">
        <h2 id="surgeons-title">Surgeons ({doctors.length})</h2>
        <ul className="plain-list" aria-label="Surgeons">
          {doctors.map((d) => (
            <ResourceRow
              key={String(d.id)}
              label={d.name}
              retired={Boolean(d.retireTime)}
              isNew={Boolean(isNew(`doctor-${d.id}`))}
              open={openFor("doctor", d.id)}
              onOpen={(what) => setOpen({ kind: "doctor", id: d.id, what })}
              form={
                openFor("doctor", d.id) === "edit" ? (
                  <EditForm
                    id={`edit-doctor-${d.id}`}
                    title={`Edit ${d.name}`}
                    initial={{ name: d.name, specialty: d.specialty }}
                    fields={[
                      { name: "name", label: "Surgeon name" },
                      { name: "specialty", label: "Specialty" },
                    ]}
                    save={(v, changed) => saveDoctor(d, v, changed)}
                    reload={async () => {
                      const fresh = (await reloadAll()).doctors.find((x) => x.id === d.id);
                      return fresh ? { name: fresh.name, specialty: fresh.specialty } : null;
                    }}
                    onSaved={(m) => close("doctor", d.id, m)}
                    onClose={() => close("doctor", d.id)}
                  />
                ) : openFor("doctor", d.id) === "retire" ? (
                  <RetirePanel
                    id={`retire-doctor-${d.id}`}
                    kind="surgeon"
                    name={d.name}
                    retire={async (cancelBookings, note) => {
                      const reply = await adminClient.retireDoctor(
                        { doctorId: d.id, etag: d.etag, cancelBookings, note },
                        { timeoutMs: 10_000 },
                      );
                      await reloadAll();
                      return { cancelled: reply.cancelledBookings.length };
                    }}
                    reload={reloadAll}
                    onRetired={(m) => close("doctor", d.id, m)}
                    onClose={() => close("doctor", d.id)}
                  />
                ) : null
              }
            >
              <span data-resource={`doctor-${d.id}`} tabIndex={-1}>
                {d.name}
              </span>
              <span className="muted small"> · {d.specialty}</span>
            </ResourceRow>
          ))}
        </ul>
        <AddForm
          id="add-surgeon"
          title="Add a surgeon"
          submitLabel="Add surgeon"
          fields={[
            { name: "name", label: "Surgeon name", autoComplete: "name" },
            { name: "specialty", label: "Specialty" },
          ]}
          create={createDoctor}
        />
      </section>
      <section className="panel" aria-labelledby="equipment-title">
        <h2 id="equipment-title">Equipment</h2>
        <ul className="plain-list" aria-label="Equipment">
          {equipment.map((e) => (
            <ResourceRow
              key={String(e.id)}
              label={e.name}
              retired={Boolean(e.retireTime)}
              isNew={Boolean(isNew(`equipment-${e.id}`))}
              open={openFor("equipment", e.id)}
              onOpen={(what) => setOpen({ kind: "equipment", id: e.id, what })}
              form={
                openFor("equipment", e.id) === "edit" ? (
                  <EditForm
                    id={`edit-equipment-${e.id}`}
                    title={`Edit ${e.name}`}
                    initial={{ name: e.name, quantity: String(e.quantity) }}
                    fields={[
                      { name: "name", label: "Equipment name" },
                      { name: "quantity", label: "Units", type: "number", min: 0 },
                    ]}
                    check={checkQuantity}
                    save={(v, changed) => saveEquipment(e, v, changed)}
                    reload={async () => {
                      const fresh = (await reloadAll()).equipment.find((x) => x.id === e.id);
                      return fresh ? { name: fresh.name, quantity: String(fresh.quantity) } : null;
                    }}
                    onSaved={(m) => close("equipment", e.id, m)}
                    onClose={() => close("equipment", e.id)}
                  />
                ) : openFor("equipment", e.id) === "retire" ? (
                  <RetirePanel
                    id={`retire-equipment-${e.id}`}
                    kind="equipment type"
                    name={e.name}
                    retire={async (cancelBookings, note) => {
                      const reply = await adminClient.retireEquipment(
                        { equipmentId: e.id, etag: e.etag, cancelBookings, note },
                        { timeoutMs: 10_000 },
                      );
                      await reloadAll();
                      return { cancelled: reply.cancelledBookings.length };
                    }}
                    reload={reloadAll}
                    onRetired={(m) => close("equipment", e.id, m)}
                    onClose={() => close("equipment", e.id)}
                  />
                ) : null
              }
            >
              <span data-resource={`equipment-${e.id}`} tabIndex={-1}>
                {e.name}
              </span>
              <span className="muted small" data-testid="units">
                {" "}
                · {e.quantity} {e.quantity === 1 ? "unit" : "units"}
              </span>
            </ResourceRow>
          ))}
        </ul>
        <AddForm
          id="add-equipment"
          title="Add an equipment type"
          submitLabel="Add equipment"
          fields={[
            { name: "name", label: "Equipment name" },
            { name: "quantity", label: "Units", type: "number", min: 0, max: 100_000, initial: "1" },
          ]}
          check={(v): FieldProblems => (Number.isNaN(wholeNumber(v.quantity)) ? { quantity: "must be a whole number" } : {})}
          create={createEquipment}
        />
      </section>
    </div>
  );
}
