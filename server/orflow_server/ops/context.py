"""What every use case needs, handed in rather than found in globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from ..metrics import Metrics
from .scheduling import ExpiryScheduler


@dataclass(frozen=True, kw_only=True)
class OpsContext:
    pool: asyncpg.Pool
    hold_ttl: timedelta
    turnover: timedelta
    expiry: ExpiryScheduler
    metrics: Metrics = field(default_factory=Metrics)
    allow_reset: bool = False  # SeedDatabase wipes every table but the audit trail: a deployment must opt in
