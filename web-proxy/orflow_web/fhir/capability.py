"""The CapabilityStatement at /fhir/r4/metadata, rendered from search.SUPPORTED so it says exactly what runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from .resources import APPOINTMENT_STATUS
from .search import SUPPORTED

FHIR_VERSION: Final = "4.0.1"
SECURITY: Final = (
    "Send the same bearer token as to the gRPC API (Authorization: Bearer <JWT>); it is passed through and the "
    "gRPC server applies its role rules. SMART-on-FHIR scopes map to roles: patient/*.read|write → patient "
    "(its own Appointments only), user/*.* → admin for hospital staff, system/*.* → service (EHR, integration "
    "engine). Slot, Schedule, Practitioner and PractitionerRole need no token; Location and Device need admin."
)


def capability_statement(base: str, now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now.date().isoformat(),
        "publisher": "OR Flow",
        "kind": "instance",
        "implementation": {"description": "OR Flow operating-room scheduling (FHIR face of the gRPC API)", "url": base},
        "software": {"name": "orflow-web"},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/merge-patch+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Hold-then-book as in the Argonaut Scheduling IG's patient flow: search free Slots, "
                    "POST an Appointment (status pending) to hold one, PATCH or PUT its status to booked to "
                    f"confirm or cancelled to cancel. Appointment statuses used: "
                    f"{', '.join(sorted(set(APPOINTMENT_STATUS.values())))}. The $find/$hold/$book operations "
                    "are not offered: the plain interactions already express them."
                ),
                "security": {"cors": True, "description": SECURITY},
                "resource": [_resource(kind) for kind in sorted(SUPPORTED)],
            }
        ],
    }


def _resource(kind: str) -> dict[str, Any]:
    support = SUPPORTED[kind]
    resource: dict[str, Any] = {
        "type": kind,
        "documentation": support.documentation,
        "interaction": [{"code": code} for code in support.interactions],
        "versioning": "versioned" if support.versioned else "no-version",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": support.conditional_create,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
    }
    if support.params:
        resource["searchParam"] = [
            {"name": name, "type": param.type, "documentation": param.documentation}
            for name, param in support.params.items()
        ]
    return resource
