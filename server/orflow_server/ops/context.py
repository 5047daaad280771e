"""What every use case needs, handed in rather than found in globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg

from ..metrics import Metrics

if TYPE_CHECKING:
    from .expiry import ExpiryScheduler


@dataclass(frozen=True, kw_only=True)
class OpsContext:
    pool: asyncpg.Pool
    hold_ttl: timedelta
    turnover: timedelta
    expiry: ExpiryScheduler
    metrics: Metrics = field(default_factory=Metrics)
    allow_reset: bool = False  # SeedDatabase wipes every table: a deployment must opt in
