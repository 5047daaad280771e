"""How big and how long each scenario is: the full bench, --quick, and the smoke size the test suite runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    processes: int = 4
    rooms: int = 1000
    spread_slots: int = 60_000
    spread_levels: tuple[int, ...] = (4, 8, 16, 32, 64)
    spread_seconds: float = 5.0
    hot_clients: int = 200
    hot_slots: int = 5
    hot_rounds: int = 3
    vent_slots: int = 20
    browse_sizes: tuple[int, int] = (10_000, 1_000_000)
    browse_rooms: int = 100
    browse_callers: int = 8
    browse_seconds: float = 3.0
    history_size: int = 1_000_000
    history_callers: int = 16
    history_seconds: float = 4.0
    watchers: int = 1000
    watch_events: int = 20
    watch_gap_s: float = 0.2
    expiry_holds: int = 10_000
    expiry_lead_s: float = 8.0
    expiry_timeout_s: float = 30.0
    proxy_callers: int = 16  # the proxy and the 1-vs-2 server processes scenarios
    scale_callers: int = 24  # multi-process (1 vs 3 servers) and PgBouncer vs direct
    overload_callers: int = 32  # closed-loop callers that find the sustained rate (bench/overload.py)
    overload_factor: float = 10.0  # then this many times that rate, open loop
    overload_seconds: float = 5.0  # each phase
    overload_rounds: int = 2
    # The second overload leg's ORFLOW_GRPC_MAX_STREAMS_PER_CONNECTION: a flooding connection queues at its own end.
    overload_guard_streams: int = 32
    overload_client_nice: int = 19  # the flood's processes yield the cores, as callers on other machines would


FULL = BenchConfig()
QUICK = BenchConfig(
    spread_slots=30_000,
    spread_levels=(4, 16, 48),
    spread_seconds=2.5,
    hot_rounds=1,
    browse_sizes=(10_000, 100_000),
    browse_seconds=1.5,
    history_size=100_000,
    history_seconds=2.5,
    watchers=250,
    watch_events=10,
    expiry_holds=2_000,
    expiry_lead_s=4.0,
    overload_seconds=3.0,
)
# For the test suite: every scenario runs, at sizes that take seconds; never judged on speed.
SMOKE = BenchConfig(
    processes=2,
    rooms=50,
    spread_slots=1_000,
    spread_levels=(2,),
    spread_seconds=0.5,
    hot_clients=20,
    hot_slots=2,
    hot_rounds=1,
    vent_slots=4,
    browse_sizes=(600, 2_000),
    browse_rooms=4,
    browse_callers=2,
    browse_seconds=0.3,
    history_size=2_000,
    history_callers=2,
    history_seconds=0.5,
    watchers=10,
    watch_events=2,
    watch_gap_s=0.05,
    expiry_holds=100,
    expiry_lead_s=2.0,
    proxy_callers=2,
    scale_callers=4,
    overload_callers=4,
    overload_factor=3.0,
    overload_seconds=0.5,
    overload_rounds=1,
)
PRESETS = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
