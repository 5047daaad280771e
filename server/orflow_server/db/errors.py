"""Translates the database's refusals into domain errors, by constraint name, and its passing faults by class.

A refusal (a constraint) is the rule speaking; a passing fault (a lost or
refused connection, a server shutting down, a serialization failure or
deadlock PostgreSQL broke, a statement or lock wait that ran past its
timeout) says nothing about the request: UnavailableError, answered
UNAVAILABLE with RetryInfo, and a retry with the same request_id is safe
because nothing was committed, or the retry finds what was.
"""

from __future__ import annotations

import asyncio

import asyncpg

from ..domain import errors

_REFUSALS: dict[str, type[errors.OrFlowError]] = {
    "bookings_one_active_per_slot": errors.SlotTakenError,
    "bookings_room_no_overlap": errors.RoomBusyError,
    "bookings_surgeon_no_overlap": errors.SurgeonBusyError,
    "bookings_patient_no_overlap": errors.PatientBusyError,
    "bookings_equipment_within_inventory": errors.EquipmentUnavailableError,
    "rooms_name_key": errors.AlreadyExistsError,
    "equipment_name_key": errors.AlreadyExistsError,
    "sites_name_key": errors.AlreadyExistsError,
    "equipment_quantity_covers_bookings": errors.EquipmentInUseError,
}

_MESSAGES: dict[str, str] = {
    "bookings_one_active_per_slot": "the slot is already held by another booking",
    "bookings_room_no_overlap": "the room is booked at an overlapping time",
    "bookings_surgeon_no_overlap": "the surgeon is booked at an overlapping time",
    "bookings_patient_no_overlap": "the patient has another booking at an overlapping time",
    "bookings_equipment_within_inventory": "not enough equipment is free at the busiest moment",
    "rooms_name_key": "a room with that name already exists",
    "equipment_name_key": "an equipment type with that name already exists",
    "sites_name_key": "a site with that name already exists",
    "equipment_quantity_covers_bookings": "booked cases need more of this equipment at once than that",
}


def translate(exc: asyncpg.IntegrityConstraintViolationError) -> errors.OrFlowError | None:
    """The domain error for a constraint the database enforced, if it is one we name."""
    name = getattr(exc, "constraint_name", None) or ""
    error_class = _REFUSALS.get(name)
    if error_class is None:
        return None
    return error_class(_MESSAGES[name], metadata={"constraint": name})


# Checked in order; the first class the exception is an instance of names the fault.
_TRANSIENT: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str, float], ...] = (
    (asyncpg.SerializationError, "a concurrent transaction conflicted (serialization failure); retry", 0.05),
    (asyncpg.DeadlockDetectedError, "a concurrent transaction conflicted (deadlock); retry", 0.05),
    (asyncpg.LockNotAvailableError, "the resource is busy (lock wait timed out); retry", 0.2),
    (asyncpg.QueryCanceledError, "the database call ran out of time (statement timeout); retry", 0.2),
    (asyncpg.TooManyConnectionsError, "the database has no free connection; retry", 0.5),
    (asyncpg.CannotConnectNowError, "the database is starting or shutting down; retry", 0.5),
    (asyncpg.AdminShutdownError, "the database connection was shut down; retry", 0.2),
    (asyncpg.CrashShutdownError, "the database connection was shut down; retry", 0.5),
    (asyncpg.PostgresConnectionError, "the database connection failed; retry", 0.2),
    (asyncpg.ConnectionDoesNotExistError, "the database connection was lost; retry", 0.2),
    (asyncpg.InterfaceError, "the database connection was lost; retry", 0.2),
    ((OSError, asyncio.TimeoutError), "a backing service is unreachable; retry", 0.5),
)


def translate_transient(exc: BaseException) -> errors.UnavailableError | None:
    """A UnavailableError for a fault that passes (see the module docstring); None for anything else.

    Only InterfaceErrors about a closed or lost connection count: the others are our bugs.
    """
    if isinstance(exc, asyncpg.InternalClientError):
        return _server_closed_while_idle(exc)
    if isinstance(exc, asyncpg.InterfaceError) and not _is_connection_gone(exc):
        return None
    for classes, message, delay in _TRANSIENT:
        if isinstance(exc, classes):
            sqlstate = getattr(exc, "sqlstate", None)
            metadata = {"sqlstate": sqlstate} if isinstance(sqlstate, str) else {}
            return errors.UnavailableError(message, retry_after_seconds=delay, metadata=metadata)
    return None


def _is_connection_gone(exc: asyncpg.InterfaceError) -> bool:
    text = str(exc)
    return "connection is closed" in text or "connection was closed" in text or "pool is closing" in text


def _server_closed_while_idle(exc: asyncpg.InternalClientError) -> errors.UnavailableError | None:
    """The one InternalClientError that is a lost connection, not a bug.

    When PostgreSQL ends a connection (pg_terminate_backend, restart, failover) it
    sends a FATAL ErrorResponse, then closes the socket. If the ErrorResponse lands
    while asyncpg's protocol is idle between two statements (a pooled connection,
    or one just acquired, or between a prepare and its execute), asyncpg cannot
    dispatch it and leaves the protocol in "error consume" (state 2) until it reads
    the EOF a loop turn later. The next statement then fails in _set_state with
    "cannot switch to state 15 (BEGIN) / 12 (execute) / 11 (prepare); another
    operation (2) is in progress", BEFORE anything is written to the socket: the
    statement never reached the server, so nothing was committed and a retry is
    safe. The connection is closed by then and the pool drops it on release.
    Reproduced by tests/rpc/test_transient_faults.py (with no cancelled call at all).
    """
    text = str(exc)
    if text.startswith("cannot switch to state") and "another operation (2) is in progress" in text:
        return errors.UnavailableError(
            "the database connection was closed by the server; retry", retry_after_seconds=0.2
        )
    return None
