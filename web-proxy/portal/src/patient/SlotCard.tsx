import { formatDay, formatTimes, siteLabel, zoneOf } from "../format";
import type { Slot } from "../gen/orflow/v1/resources_pb";

export function SlotCard({ slot, busy, onBook }: { slot: Slot; busy: boolean; onBook: () => void }) {
  const titleId = `slot-${slot.id}-title`;
  const zone = zoneOf(slot.site);
  return (
    <li className="slot-card" aria-labelledby={titleId} data-slot-id={String(slot.id)}>
      <div className="slot-when">
        <span className="slot-day">{formatDay(slot.startTime, zone)}</span>
        <span className="slot-time" data-testid="slot-time">
          {formatTimes(slot.startTime, slot.endTime, zone)}
        </span>
        <span className="slot-zone small muted">{zone}</span>
      </div>
      <div className="slot-what">
        <h3 id={titleId}>{slot.procedureType}</h3>
        <p>
          {slot.doctor?.name} <span className="muted">· {slot.doctor?.specialty}</span>
        </p>
        <p className="muted">
          <span className="tag">Room</span> {slot.room?.name} <span className="small">· {siteLabel(slot.site)}</span>
        </p>
        {slot.requiredEquipment.length > 0 && (
          <p className="muted">
            <span className="tag">Equipment</span>{" "}
            {slot.requiredEquipment.map((e) => `${e.equipmentName} × ${e.quantity}`).join(", ")}
          </p>
        )}
      </div>
      <button
        type="button"
        className="button primary"
        onClick={onBook}
        disabled={busy}
        aria-describedby={titleId}
      >
        {busy ? "Booking…" : "Book"}
      </button>
    </li>
  );
}
