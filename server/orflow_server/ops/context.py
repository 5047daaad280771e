"""What every use case needs, handed in rather than found in globals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg


@dataclass(frozen=True, kw_only=True)
class OpsContext:
    pool: asyncpg.Pool
    hold_ttl: timedelta
    turnover: timedelta
