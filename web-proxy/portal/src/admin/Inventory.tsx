import { useEffect, useRef, useState } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import type { Doctor, Equipment, Room } from "../gen/orflow/v1/resources_pb";
import { FieldError, type FieldProblems, fieldMessage, invalidProps, unplacedProblems } from "./fieldErrors";

async function allDoctors(): Promise<Doctor[]> {
  const doctors: Doctor[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listDoctors({ pageSize: 100, pageToken }, { timeoutMs: 10_000 });
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

export function Inventory() {
  const [rooms, setRooms] = useState<Room[]>([]);
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [equipment, setEquipment] = useState<Equipment[]>([]);
  const [added, setAdded] = useState<Set<string>>(new Set());
  const [error, setError] = useState("");

  useEffect(() => {
    Promise.all([adminClient.listRooms({}), allDoctors(), adminClient.listEquipment({})]).then(
      ([r, d, e]) => {
        setRooms(r.rooms);
        setDoctors(d);
        setEquipment(e.equipment);
      },
      (err: unknown) => setError(friendlyError(err).message),
    );
  }, []);

  const mark = (key: string) => setAdded((keys) => new Set(keys).add(key));
  const isNew = (key: string) => (added.has(key) ? "row-new" : undefined);

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

  return (
    <div className="grid-3">
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <section className="panel" aria-labelledby="rooms-title">
        <h2 id="rooms-title">Operating rooms ({rooms.length})</h2>
        <ul className="plain-list" aria-label="Operating rooms">
          {rooms.map((r) => (
            <li key={String(r.id)} className={isNew(`room-${r.id}`)}>
              {r.name}
            </li>
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
            <li key={String(d.id)} className={isNew(`doctor-${d.id}`)}>
              {d.name}
              <span className="muted small"> · {d.specialty}</span>
            </li>
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
        <div className="table-wrap">
          <table className="table" aria-labelledby="equipment-title">
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col" className="num">
                  Units
                </th>
              </tr>
            </thead>
            <tbody>
              {equipment.map((e) => (
                <tr key={String(e.id)} className={isNew(`equipment-${e.id}`)}>
                  <td>{e.name}</td>
                  <td className="num">{e.quantity}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
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
