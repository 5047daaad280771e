// Server errors in words a person understands: by the constraint an ErrorInfo names, its reason, then the status code.
// Reasons are orflow.v1.ErrorReason (protos/orflow/v1/error_reason.proto): the wire string is the value's name
// without "ERROR_REASON_", which is also the TypeScript member protoc-gen-es generates (ErrorReason.SLOT_TAKEN).
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb";
import { ErrorReason, ErrorReasonSchema } from "./gen/orflow/v1/error_reason_pb";

const REASON_PREFIX = "ERROR_REASON_";

/** The ErrorReason an ErrorInfo reason string names; UNSPECIFIED for none, or one newer than this portal. */
export function parseReason(wire: string): ErrorReason {
  return ErrorReasonSchema.values.find((v) => v.name === REASON_PREFIX + wire)?.number ?? ErrorReason.UNSPECIFIED;
}

const BY_REASON: Partial<Record<ErrorReason, string>> = {
  [ErrorReason.SLOT_TAKEN]: "That slot was just taken — pick another.",
  [ErrorReason.ROOM_BUSY]: "That operating room is already in use at that time — pick another slot.",
  [ErrorReason.SURGEON_BUSY]: "That surgeon is already operating at that time — pick another slot.",
  [ErrorReason.PATIENT_BUSY]: "This patient already has a surgery booked at an overlapping time.",
  [ErrorReason.EQUIPMENT_UNAVAILABLE]: "Some required equipment is already in use at that time — pick another slot.",
  [ErrorReason.HOLD_EXPIRED]: "Your hold ran out before it was confirmed. The slot is free again — book it once more if it is still listed.",
  [ErrorReason.HOLD_ALREADY_EXTENDED]: "This hold was already extended once; confirm it before it runs out.",
  [ErrorReason.BOOKING_NOT_PENDING]: "This booking can no longer be confirmed: it is not on hold any more.",
  [ErrorReason.BOOKING_NOT_ACTIVE]: "This booking is already cancelled or ended.",
  [ErrorReason.SLOT_STARTED]: "That slot has already started and can no longer be booked.",
  [ErrorReason.SLOT_NOT_FOUND]: "That slot no longer exists.",
  [ErrorReason.BOOKING_NOT_FOUND]: "We could not find that booking.",
  [ErrorReason.DOCTOR_NOT_FOUND]: "That surgeon is not on the list.",
  [ErrorReason.ROOM_NOT_FOUND]: "That operating room is not on the list.",
  [ErrorReason.EQUIPMENT_NOT_FOUND]: "That equipment type is not on the list.",
  [ErrorReason.REQUEST_ID_REUSED]: "This request was already used for a different booking. Please try again.",
  [ErrorReason.ALREADY_EXISTS]: "Something with that name already exists.",
  [ErrorReason.INVALID_ARGUMENT]: "Some details need fixing — see the highlighted fields.",
  [ErrorReason.UNAVAILABLE]: "Live updates paused while the service restarts — reconnecting.",
  [ErrorReason.ROLE_FORBIDDEN]: "Your sign-in does not allow this: it is for hospital administrators only.",
  [ErrorReason.NOT_YOUR_PATIENT_ID]: "You can only book and see bookings for yourself.",
  [ErrorReason.TOKEN_MISSING]: "Please sign in first.",
  [ErrorReason.TOKEN_EXPIRED]: "Your session has expired — please sign in again.",
  [ErrorReason.SLOT_CANCELLED]: "That slot was cancelled by the hospital and can no longer be booked.",
  [ErrorReason.SLOT_IN_USE]: "That slot's case has already started or finished, so the slot cannot be cancelled.",
  [ErrorReason.SITE_NOT_FOUND]: "That hospital is not on the list.",
  [ErrorReason.DEADLINE_EXCEEDED]: "The booking service took too long to answer; nothing was changed. Please try again.",
  [ErrorReason.RATE_LIMITED]: "Too many requests in a short time — wait a moment and try again.",
};

/** The resource an ErrorInfo's "resource" metadata names, in words. */
const RESOURCE_WORDS: Record<string, string> = {
  room: "operating room",
  doctor: "surgeon",
  equipment: "equipment type",
  slot: "slot",
  site: "hospital",
  booking: "booking",
};

const STATE_WORDS: Record<string, string> = {
  PENDING: "on hold",
  CONFIRMED: "confirmed",
  CHECKED_IN: "checked in",
  IN_PROGRESS: "in surgery",
  COMPLETED: "completed",
  NO_SHOW: "a no-show",
  CANCELLED: "cancelled",
  FAILED: "a lapsed hold",
};

/** "bookings #3 and #9" from ErrorInfo's comma-separated "booking_ids". */
export function bookingList(ids: string[]): string {
  const named = ids.map((id) => `#${id}`);
  const words = named.length <= 1 ? named.join("") : `${named.slice(0, -1).join(", ")} and ${named[named.length - 1]}`;
  return `${ids.length === 1 ? "booking" : "bookings"} ${words}`;
}

export function bookingIds(metadata: Record<string, string>): string[] {
  return (metadata.booking_ids ?? "")
    .split(",")
    .map((id) => id.trim())
    .filter(Boolean);
}

/** Reasons whose sentence names what the ErrorInfo metadata says (the bookings in the way, the current state). */
const WITH_METADATA: Partial<Record<ErrorReason, (m: Record<string, string>) => string>> = {
  [ErrorReason.ETAG_MISMATCH]: (m) =>
    `This ${RESOURCE_WORDS[m.resource] ?? "record"} was changed since you opened it — nothing was saved. It has been reloaded: check its current values and try again.`,
  [ErrorReason.EQUIPMENT_IN_USE]: (m) =>
    `Active bookings need ${m.needed ?? "more"} ${m.needed === "1" ? "unit" : "units"} of this equipment at their busiest moment, so the count cannot go that low. In the way: ${bookingList(bookingIds(m))}.`,
  [ErrorReason.RESOURCE_IN_USE]: (m) =>
    `This ${RESOURCE_WORDS[m.resource] ?? "resource"} is needed by future ${bookingList(bookingIds(m))}. Cancel ${bookingIds(m).length === 1 ? "it" : "them"} too to retire it (a case already in surgery cannot be cancelled).`,
  [ErrorReason.RESOURCE_RETIRED]: (m) =>
    `That ${RESOURCE_WORDS[m.resource] ?? "resource"} (#${m.id ?? "?"}) is retired: it can no longer be booked, edited or used.`,
  [ErrorReason.BOOKING_NOT_CONFIRMED]: (m) =>
    `That step needs a confirmed booking; this one is ${STATE_WORDS[m.status] ?? "in another state"}.`,
  [ErrorReason.BOOKING_NOT_CHECKED_IN]: (m) =>
    `Only a checked-in case can start; this one is ${STATE_WORDS[m.status] ?? "in another state"}.`,
  [ErrorReason.BOOKING_NOT_IN_PROGRESS]: (m) =>
    `Only a case in surgery can be completed; this one is ${STATE_WORDS[m.status] ?? "in another state"}.`,
};

// ALREADY_EXISTS says which unique name clashed: ErrorInfo metadata "constraint" (server/orflow_server/db/errors.py).
const BY_CONSTRAINT: Record<string, string> = {
  rooms_name_key: "A room with that name already exists — choose another name.",
  equipment_name_key: "An equipment type with that name already exists — choose another name.",
};

const BY_CODE: Partial<Record<Code, string>> = {
  [Code.Unavailable]: "The booking service can't be reached right now. Please try again in a moment.",
  [Code.DeadlineExceeded]: "The booking service took too long to answer. Please try again.",
  [Code.NotFound]: "We could not find what you asked for.",
  [Code.InvalidArgument]: "Some details need fixing.",
  [Code.ResourceExhausted]: "That request is too large.",
  [Code.Unauthenticated]: "Your sign-in was not accepted — please sign in again.",
  [Code.PermissionDenied]: "Your sign-in does not allow this.",
  [Code.Aborted]: "Someone else changed this at the same moment — please try again.",
  [Code.FailedPrecondition]: "That can't be done in the booking's current state.",
};

export interface FriendlyError {
  message: string;
  /** The ErrorInfo reason (ErrorReason.UNSPECIFIED when the server sent none). */
  reason: ErrorReason;
  /** The ErrorInfo's metadata (e.g. "booking_ids", "etag", "resource"); empty when there was none. */
  metadata: Record<string, string>;
  /** Field path (e.g. "start_time") → what is wrong with it, from google.rpc.BadRequest. */
  fields: Record<string, string>;
}

export function friendlyError(err: unknown): FriendlyError {
  const error = ConnectError.from(err);
  const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === "orflow");
  const fields: Record<string, string> = {};
  for (const bad of error.findDetails(BadRequestSchema)) {
    for (const v of bad.fieldViolations) fields[v.field] = v.description;
  }
  const reason = parseReason(info?.reason ?? "");
  const metadata = { ...(info?.metadata ?? {}) };
  const message =
    BY_CONSTRAINT[metadata.constraint ?? ""] ??
    WITH_METADATA[reason]?.(metadata) ??
    BY_REASON[reason] ??
    BY_CODE[error.code] ??
    "Something went wrong on our side. Please try again.";
  return { message, reason, metadata, fields };
}
