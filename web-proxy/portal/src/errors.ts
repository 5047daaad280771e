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
  const message =
    BY_CONSTRAINT[info?.metadata.constraint ?? ""] ?? BY_REASON[reason] ?? BY_CODE[error.code] ?? "Something went wrong on our side. Please try again.";
  return { message, reason, fields };
}
