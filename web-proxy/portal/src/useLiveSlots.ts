// Available slots for a filter: ListSlots for the list, WatchSlots to keep it live.
import { useCallback, useEffect, useRef, useState } from "react";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { slotClient } from "./api";
import type { Slot } from "./gen/orflow/v1/resources_pb";
import { SlotChangeKind } from "./gen/orflow/v1/slot_service_pb";
import { dayIn, toDate, toLocalDate, zoneOf } from "./format";

export interface SlotFilter {
  procedureType: string;
  doctorId: bigint;
  /** One site's slots (0n: every site). */
  siteId: bigint;
  /** "2030-05-04" or "": a calendar day read on each slot's own site clock. */
  day: string;
}

export type LiveState = "connecting" | "live" | "reconnecting";

const MAX_SLOTS = 500;

function inWindow(slot: Slot, filter: SlotFilter): boolean {
  if (filter.siteId && slot.site?.id !== filter.siteId) return false;
  if (!filter.day) return toDate(slot.startTime) > new Date();
  return dayIn(toDate(slot.startTime), zoneOf(slot.site)) === filter.day;
}

/** With one site the server finds its local day (ListSlots' `day`); across sites, the widest window any zone's
 * day can fall in (UTC−12 to UTC+14), narrowed here to each slot's own local day. */
function dayFilter(filter: SlotFilter) {
  if (!filter.day) return {};
  if (filter.siteId) return { day: toLocalDate(filter.day) };
  const midnight = Date.parse(`${filter.day}T00:00:00Z`);
  return {
    windowStart: timestampFromDate(new Date(midnight - 14 * 3_600_000)),
    windowEnd: timestampFromDate(new Date(midnight + 36 * 3_600_000)),
  };
}

async function listAvailable(filter: SlotFilter, signal: AbortSignal): Promise<Slot[]> {
  const slots: Slot[] = [];
  let pageToken = "";
  do {
    const reply = await slotClient.listSlots(
      {
        pageSize: 100,
        pageToken,
        procedureType: filter.procedureType,
        doctorId: filter.doctorId,
        siteId: filter.siteId,
        ...dayFilter(filter),
        availableOnly: true,
      },
      { signal, timeoutMs: 10_000 },
    );
    slots.push(...reply.slots.filter((s) => inWindow(s, filter)));
    pageToken = reply.nextPageToken;
  } while (pageToken && slots.length < MAX_SLOTS);
  return slots;
}

/**
 * `ownSlotId` is the slot this page itself holds: its changes are not announced as "just taken" (the hold
 * panel says it is yours), so a screen-reader user never hears their own booking as someone else's.
 */
export function useLiveSlots(filter: SlotFilter, ownSlotId: bigint | null = null) {
  const [slots, setSlots] = useState<Map<string, Slot>>(new Map());
  const [state, setState] = useState<LiveState>("connecting");
  const [loadError, setLoadError] = useState<unknown>(null);
  const [announcement, setAnnouncement] = useState("");
  const [reloads, setReloads] = useState(0);
  const filterRef = useRef(filter);
  filterRef.current = filter;
  const ownRef = useRef(ownSlotId);
  ownRef.current = ownSlotId;
  const key = `${filter.procedureType}|${filter.doctorId}|${filter.siteId}|${filter.day}`;

  const reload = useCallback(() => setReloads((n) => n + 1), []);
  const drop = useCallback((slotId: bigint) => {
    setSlots((current) => {
      const next = new Map(current);
      next.delete(String(slotId));
      return next;
    });
  }, []);

  // The list: loaded once per filter (and on demand). A snapshot from the stream that lands while a load is
  // in flight wins over it, so the list never goes back to an older reading; the first snapshot does not
  // ask for a second ListSlots (it carries the slots itself).
  const snapshots = useRef(0);
  useEffect(() => {
    const abort = new AbortController();
    const seen = snapshots.current;
    listAvailable(filterRef.current, abort.signal).then(
      (list) => {
        if (snapshots.current === seen) setSlots(new Map(list.map((s) => [String(s.id), s])));
        setLoadError(null);
      },
      (err: unknown) => {
        if (!abort.signal.aborted) setLoadError(err);
      },
    );
    return () => abort.abort();
  }, [key, reloads]);

  // The live stream: reconnects with backoff; each snapshot (first, or after a reset) replaces the list.
  useEffect(() => {
    const abort = new AbortController();
    const run = async () => {
      let attempt = 0;
      while (!abort.signal.aborted) {
        try {
          const stream = slotClient.watchSlots(
            {
              procedureType: filterRef.current.procedureType,
              doctorId: filterRef.current.doctorId,
              siteId: filterRef.current.siteId,
            },
            { signal: abort.signal },
          );
          let snapshot: Slot[] = [];
          for await (const change of stream) {
            attempt = 0;
            if (change.kind === SlotChangeKind.SNAPSHOT && change.slot) {
              snapshot.push(change.slot);
            } else if (change.kind === SlotChangeKind.SNAPSHOT_COMPLETE) {
              // A (re)snapshot is the view as it is now: replace the list with it, no second ListSlots.
              const fresh = snapshot.filter((s) => s.available && inWindow(s, filterRef.current)).slice(0, MAX_SLOTS);
              snapshot = [];
              snapshots.current += 1;
              setSlots(new Map(fresh.map((s) => [String(s.id), s])));
              setLoadError(null);
              setState("live");
            } else if (change.slot) {
              apply(change.slot, change.kind);
            }
          }
        } catch {
          if (abort.signal.aborted) return;
        }
        setState("reconnecting");
        await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** attempt++, 10_000)));
      }
    };
    const apply = (slot: Slot, kind: SlotChangeKind) => {
      setSlots((current) => {
        const next = new Map(current);
        if (slot.available && inWindow(slot, filterRef.current)) next.set(String(slot.id), slot);
        else next.delete(String(slot.id));
        return next;
      });
      if (slot.id === ownRef.current) return;
      const what = kind === SlotChangeKind.CREATED ? "added" : slot.available ? "available again" : "just taken";
      setAnnouncement(`${slot.procedureType} with ${slot.doctor?.name ?? "a surgeon"} ${what}.`);
    };
    void run();
    return () => abort.abort();
  }, [key]);

  const sorted = [...slots.values()].sort((a, b) => toDate(a.startTime).getTime() - toDate(b.startTime).getTime());
  return { slots: sorted, state, loadError, announcement, reload, drop };
}
