import { useEffect, useState } from "react";
import { adminClient, slotClient } from "../api";
import { friendlyError } from "../errors";
import type { Doctor, Equipment, Room } from "../gen/orflow/v1/resources_pb";

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

export function Inventory() {
  const [rooms, setRooms] = useState<Room[]>([]);
  const [doctors, setDoctors] = useState<Doctor[]>([]);
  const [equipment, setEquipment] = useState<Equipment[]>([]);
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

  return (
    <div className="grid-3">
      {error && (
        <p className="alert alert-error" role="alert">
          {error}
        </p>
      )}
      <section className="panel" aria-labelledby="rooms-title">
        <h2 id="rooms-title">Operating rooms ({rooms.length})</h2>
        <ul className="plain-list">
          {rooms.map((r) => (
            <li key={String(r.id)}>{r.name}</li>
          ))}
        </ul>
      </section>
      <section className="panel" aria-labelledby="surgeons-title">
        <h2 id="surgeons-title">Surgeons ({doctors.length})</h2>
        <ul className="plain-list">
          {doctors.map((d) => (
            <li key={String(d.id)}>
              {d.name}
              <span className="muted small"> · {d.specialty}</span>
            </li>
          ))}
        </ul>
      </section>
      <section className="panel" aria-labelledby="equipment-title">
        <h2 id="equipment-title">Equipment</h2>
        <table className="table">
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
              <tr key={String(e.id)}>
                <td>{e.name}</td>
                <td className="num">{e.quantity}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
