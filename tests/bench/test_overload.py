"""The overload run (orflow_tools.bench.overload) cannot rot: a tiny run on a real stack.

Only what must hold at any speed is asserted (never a latency or a rate): every
answer is one an overloaded server may give, no invariant is broken, and the
pool is free again once the load stops.
"""

from __future__ import annotations

import os
from pathlib import Path

from orflow_server.settings import Settings
from orflow_tools.bench.overload import GAVE_UP, PRESETS, SHED, run_overload
from orflow_tools.bench.scenarios import REFUSALS


async def test_smoke_overload_answers_only_expected_codes_and_frees_the_pool(
    server_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=server_url, redis_url=redis_url, data_dir=tmp_path / "data")
    result = await run_overload(settings, PRESETS["smoke"], environ=os.environ, progress=lambda _: None)
    assert result.calls > 0 and result.sustained_per_s > 0
    assert result.unexpected == {}, result.unexpected  # INTERNAL, UNKNOWN, ... never
    # The probe caller ran beside the flood, and got only answers an overloaded server may give.
    assert sum(result.probe_codes.values()) > 0
    assert set(result.probe_codes) <= {"OK", *REFUSALS, *SHED, *GAVE_UP}, result.probe_codes
    assert result.violations == {}
    assert result.pool_in_use_after == 0
    assert result.rss_before_mb > 0 and all(mb > 0 for mb in result.rss_after_rounds_mb)
