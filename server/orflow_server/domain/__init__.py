"""The booking rules in plain Python: no gRPC, asyncpg or SAQ here."""
