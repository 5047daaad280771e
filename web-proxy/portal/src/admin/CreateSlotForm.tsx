import { useEffect, useState } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import { formatRange, zonedTimestamp, zoneOf } from "../format";
import type { Doctor, Equipment, Room, Site, Slot } from "../gen/orflow/v1/resources_pb";
import { FieldError, fieldMessage, invalidProps, unplacedProblems } from "./fieldErrors";

interface Need {
  equipmentId: string;
  quantity: string;
}

const LABELS: Record<string, string> = {
  doctor_id: "Surgeon",
  room_id: "Room",
  procedure_type: "Procedure",
  start_time: "Start",
  end_time: "End",
};

export function CreateSlotForm(props: { rooms: Room[]; sites: Site[]; defaultDay: string; onCreated: (slot: Slot) => void }) {
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [equipment, setEquipment] = useState<Equipment[]>([]);
  const [doctorId, setDoctorId] = useState("");
  const [roomId, setRoomId] = useState("");
  const [procedure, setProcedure] = useState("");
  const [day, setDay] = useState(props.defaultDay);
  const [start, setStart] = useState("09:00");
  const [end, setEnd] = useState("11:00");
  const [needs, setNeeds] = useState<Need[]>([]);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const [created, setCreated] = useState("");
  const [working, setWorking] = useState(false);
  useEffect(() => setDay(props.defaultDay), [props.defaultDay]);
  // The date and times are the chosen room's hospital's wall clock.
  const room = props.rooms.find((r) => String(r.id) === roomId) ?? props.rooms[0];
  const zone = zoneOf(props.sites.find((s) => s.id === room?.siteId));

  useEffect(() => {
    slotClient.listDoctors({ pageSize: 100 }).then((r) => setDoctors(r.doctors), () => undefined);
    adminClient.listEquipment({}).then((r) => setEquipment(r.equipment), () => undefined);
  }, []);

  async function submit(event: React.FormEvent) {
    event.preventDefault();
    setWorking(true);
    setError("");
    setFields({});
    setCreated("");
    try {
      const reply = await adminClient.createSlot(
        {
          doctorId: BigInt(doctorId || 0),
          roomId: BigInt(roomId || 0),
          procedureType: procedure,
          startTime: day && start ? zonedTimestamp(day, start, zone) : undefined,
          endTime: day && end ? zonedTimestamp(day, end, zone) : undefined,
          requiredEquipment: needs.map((n) => ({
            equipmentId: BigInt(n.equipmentId || 0),
            quantity: Number(n.quantity) || 0,
          })),
        },
        { timeoutMs: 10_000 },
      );
      if (reply.slot) {
        setCreated(`Slot #${reply.slot.id} published: ${reply.slot.procedureType}, ${formatRange(reply.slot.startTime, reply.slot.endTime, zoneOf(reply.slot.site))}.`);
        props.onCreated(reply.slot);
      }
    } catch (err) {
      const friendly = friendlyError(err);
      setFields(friendly.fields);
      setError(friendly.message);
    } finally {
      setWorking(false);
    }
  }

  const unplaced = unplacedProblems(fields, (f) => f in LABELS || f.startsWith("required_equipment["));
  // "must be after start_time" reads "must be after Start": field names in descriptions become labels.
  const words = (text: string) => text.replace(/\b[a-z]+_(?:id|time|type)\b/g, (f) => LABELS[f] ?? f);
  const err = (field: string) => fieldMessage(fields, field, LABELS[field] ?? field, words);
  const invalid = (field: string) => invalidProps(fields, field, `${field}-error`);

  return (
    <section className="panel create-slot" aria-labelledby="create-title">
      <h2 id="create-title">Publish a slot</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <div className="field">
          <label htmlFor="cs-doctor">Surgeon</label>
          <select id="cs-doctor" value={doctorId} onChange={(e) => setDoctorId(e.target.value)} {...invalid("doctor_id")}>
            <option value="">Choose a surgeon</option>
            {doctors.map((d) => (
              <option key={String(d.id)} value={String(d.id)}>
                {d.name} — {d.specialty}
              </option>
            ))}
          </select>
          <FieldError id="doctor_id-error" message={err("doctor_id")} />
        </div>
        <div className="field">
          <label htmlFor="cs-room">Room</label>
          <select id="cs-room" value={roomId} onChange={(e) => setRoomId(e.target.value)} {...invalid("room_id")}>
            <option value="">Choose a room</option>
            {props.rooms.map((r) => (
              <option key={String(r.id)} value={String(r.id)}>
                {r.name}
              </option>
            ))}
          </select>
          <FieldError id="room_id-error" message={err("room_id")} />
        </div>
        <div className="field">
          <label htmlFor="cs-procedure">Procedure</label>
          <input
            id="cs-procedure"
            value={procedure}
            onChange={(e) => setProcedure(e.target.value)}
            {...invalid("procedure_type")}
          />
          <FieldError id="procedure_type-error" message={err("procedure_type")} />
        </div>
        <div className="field">
          <label htmlFor="cs-day">Date</label>
          <input id="cs-day" type="date" value={day} aria-describedby="cs-zone" onChange={(e) => setDay(e.target.value)} />
          <p className="small muted" id="cs-zone">
            Date and times are the hospital's local time ({zone}).
          </p>
        </div>
        <div className="row-2">
          <div className="field">
            <label htmlFor="cs-start">Start</label>
            <input id="cs-start" type="time" value={start} onChange={(e) => setStart(e.target.value)} {...invalid("start_time")} />
          </div>
          <div className="field">
            <label htmlFor="cs-end">End</label>
            <input id="cs-end" type="time" value={end} onChange={(e) => setEnd(e.target.value)} {...invalid("end_time")} />
          </div>
        </div>
        <FieldError id="start_time-error" message={err("start_time")} />
        <FieldError id="end_time-error" message={err("end_time")} />
        <fieldset className="needs">
          <legend>Required equipment</legend>
          {needs.map((need, i) => {
            const base = `required_equipment[${i}]`;
            const problem = fields[`${base}.equipment_id`] ?? fields[`${base}.quantity`] ?? fields[base];
            return (
              <div className="need-row" key={i}>
                <label className="visually-hidden" htmlFor={`need-${i}`}>
                  Equipment {i + 1}
                </label>
                <select
                  id={`need-${i}`}
                  value={need.equipmentId}
                  onChange={(e) => setNeeds(needs.map((n, j) => (j === i ? { ...n, equipmentId: e.target.value } : n)))}
                >
                  <option value="">Choose equipment</option>
                  {equipment.map((e) => (
                    <option key={String(e.id)} value={String(e.id)}>
                      {e.name} ({e.quantity} in stock)
                    </option>
                  ))}
                </select>
                <label className="visually-hidden" htmlFor={`need-qty-${i}`}>
                  Units of equipment {i + 1}
                </label>
                <input
                  id={`need-qty-${i}`}
                  type="number"
                  min={1}
                  value={need.quantity}
                  onChange={(e) => setNeeds(needs.map((n, j) => (j === i ? { ...n, quantity: e.target.value } : n)))}
                />
                <button type="button" className="link-button" onClick={() => setNeeds(needs.filter((_, j) => j !== i))}>
                  Remove
                </button>
                {problem && <p className="field-error">Equipment {i + 1}: {problem}.</p>}
              </div>
            );
          })}
          <button type="button" className="link-button" onClick={() => setNeeds([...needs, { equipmentId: "", quantity: "1" }])}>
            + Add equipment
          </button>
        </fieldset>
        {unplaced.map(([f, d]) => (
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
          {working ? "Publishing…" : "Publish slot"}
        </button>
      </form>
    </section>
  );
}
