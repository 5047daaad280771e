"""A worker process that POSTs FHIR Appointments concurrently, each worker with its own HTTP client.

Run from the repository root: ``python -m tests.fhir.concurrent_client``. The
protocol is tests/rpc/concurrent_client.py's: the job on stdin
(``{"base": "http://…/fhir/r4", "token": "…", "calls": [{"slot_id": 1,
"patient_id": "p-1"}, …]}``), ``ready`` on stdout, ``go`` on stdin, then one
JSON line with an outcome per call: ``{"status": 201, "id": "7", …}`` or
``{"status": 409, "issue_code": "conflict", "reason": "SLOT_TAKEN", …}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

CALL_TIMEOUT_SECONDS = 30.0


def appointment(slot_id: int, patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "pending",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
    }


async def _one_call(http: aiohttp.ClientSession, base: str, call: dict[str, Any]) -> dict[str, Any]:
    async with http.post(
        f"{base}/Appointment",
        json=appointment(call["slot_id"], call["patient_id"]),
        headers={"Content-Type": "application/fhir+json"},
    ) as reply:
        body = await reply.json(content_type=None)
    outcome: dict[str, Any] = {"status": reply.status, "patient_id": call["patient_id"], "body": body}
    if body.get("resourceType") == "OperationOutcome":
        issue = body["issue"][0]
        outcome["issue_code"] = issue["code"]
        outcome["reason"] = issue.get("details", {}).get("coding", [{}])[0].get("code", "")
    else:
        outcome["id"] = body["id"]
    return outcome


async def run(job: dict[str, Any]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {job['token']}"}
    timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=0)  # every call on its own connection, all at once
    async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
        async with http.get(f"{job['base']}/metadata") as warm:  # connected and answering before the barrier
            assert warm.status == 200
        print("ready", flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        if go.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {go!r}")
        return list(await asyncio.gather(*(_one_call(http, job["base"], c) for c in job["calls"])))


def main() -> None:
    job = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(run(job))), flush=True)


if __name__ == "__main__":
    main()
