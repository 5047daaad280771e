// The one place the portal reaches the API: Connect-ES clients over gRPC-web, generated services only.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "./gen/orflow/v1/admin_service_pb";
import { BookingService } from "./gen/orflow/v1/booking_service_pb";
import { SlotService } from "./gen/orflow/v1/slot_service_pb";
import { currentToken, expireSession } from "./session";

/** A refused session token ends the session; a token given for one call (checking a pasted one) does not. */
function noteFailure(err: unknown, sent: string) {
  if (sent && sent === currentToken() && ConnectError.from(err).code === Code.Unauthenticated) expireSession();
}

async function* watched<T>(messages: AsyncIterable<T>, sent: string): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    noteFailure(err, sent);
    throw err;
  }
}

/** Adds `Authorization: Bearer <token>` (gRPC-web passes it on as metadata) unless the call brings its own. */
const withToken: Interceptor = (next) => async (req) => {
  const sent = req.header.has("Authorization") ? "" : currentToken();
  if (sent) req.header.set("Authorization", `Bearer ${sent}`);
  try {
    const res = await next(req);
    return res.stream ? { ...res, message: watched(res.message, sent) } : res;
  } catch (err) {
    noteFailure(err, sent);
    throw err;
  }
};

// The proxy serves this page and the API on the same origin.
const transport = createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [withToken] });

export const slotClient = createClient(SlotService, transport);
export const bookingClient = createClient(BookingService, transport);
export const adminClient = createClient(AdminService, transport);

/** Milliseconds of a default deadline for unary calls (sent as grpc-timeout). */
export const CALL_TIMEOUT_MS = 10_000;
