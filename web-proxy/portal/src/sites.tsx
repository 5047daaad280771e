// The hospitals (AdminService.ListSites, open to every caller) and a picker for pages whose lists are per site.
import { useEffect, useState } from "react";
import { adminClient } from "./api";
import type { Site } from "./gen/orflow/v1/resources_pb";

let loading: Promise<Site[]> | null = null;

/** Every site, loaded once per page load (a failed load is retried on the next call). */
export function loadSites(): Promise<Site[]> {
  loading ??= adminClient.listSites({}, { timeoutMs: 10_000 }).then(
    (reply) => reply.sites,
    (err: unknown) => {
      loading = null;
      throw err;
    },
  );
  return loading;
}

export function useSites(): { sites: Site[]; error: unknown } {
  const [sites, setSites] = useState<Site[]>([]);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let live = true;
    loadSites().then(
      (found) => live && setSites(found),
      (err: unknown) => live && setError(err),
    );
    return () => {
      live = false;
    };
  }, []);
  return { sites, error };
}

/** A labelled <select> of sites, each with its time zone; `anyLabel` adds an "every site" choice (value 0). */
export function SitePicker(props: {
  id: string;
  sites: Site[];
  value: bigint;
  onChange: (siteId: bigint) => void;
  label?: string;
  anyLabel?: string;
}) {
  return (
    <div className="field inline">
      <label htmlFor={props.id}>{props.label ?? "Hospital"}</label>
      <select id={props.id} value={String(props.value)} onChange={(e) => props.onChange(BigInt(e.target.value))}>
        {props.anyLabel !== undefined && <option value="0">{props.anyLabel}</option>}
        {props.sites.map((s) => (
          <option key={String(s.id)} value={String(s.id)}>
            {s.displayName || s.name} ({s.timeZone})
          </option>
        ))}
      </select>
    </div>
  );
}
