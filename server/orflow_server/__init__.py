"""OR Flow: surgical slot booking with no double booking, on gRPC and PostgreSQL."""
