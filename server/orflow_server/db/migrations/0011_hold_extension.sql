-- A hold may be extended once (BookingService.ExtendHold, WCAG 2.2.1): when it was, and the request_id of the
-- extension, so a retry after a lost reply is answered with the extended hold instead of a refusal.
ALTER TABLE bookings
    ADD COLUMN hold_extended_at timestamptz,
    ADD COLUMN hold_extension_request_id text
        CONSTRAINT bookings_hold_extension_request_id_length CHECK (char_length(hold_extension_request_id) <= 128);
