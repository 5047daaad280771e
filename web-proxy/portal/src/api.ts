// The one place the portal reaches the API: Connect-ES clients over gRPC-web, generated services only.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "./gen/orflow/v1/admin_service_pb";
import { BookingService } from "./gen/orflow/v1/booking_service_pb";
import { SlotService } from "./gen/orflow/v1/slot_service_pb";

// The proxy serves this page and the API on the same origin.
const transport = createGrpcWebTransport({ baseUrl: window.location.origin });

export const slotClient = createClient(SlotService, transport);
export const bookingClient = createClient(BookingService, transport);
export const adminClient = createClient(AdminService, transport);

/** Milliseconds of a default deadline for unary calls (sent as grpc-timeout). */
export const CALL_TIMEOUT_MS = 10_000;
