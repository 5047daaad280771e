import { formatDay, formatTime } from "../format";
import type { Slot } from "../gen/orflow/v1/resources_pb";

export function SlotCard({ slot, busy, onBook }: { slot: Slot; busy: boolean; onBook: () => void }) {
  const titleId = `slot-${slot.id}-title`;
  return (
    <li className="slot-card" aria-labelledby={titleId} data-slot-id={String(slot.id)}>
      <div className="slot-when">
        <span className="slot-day">{formatDay(slot.startTime)}</span>
        <span className="slot-time">
          {formatTime(slot.startTime)}–{formatTime(slot.endTime)}
        </span>
      </div>
      <div className="slot-what">
        <h3 id={titleId}>{slot.procedureType}</h3>
        <p>
          {slot.doctor?.name} <span className="muted">· {slot.doctor?.specialty}</span>
        </p>
        <p className="muted">
          <span className="tag">Room</span> {slot.room?.name}
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
