"""What a scenario measured, and the statistics over latencies."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Measure:
    """One system (OR Flow or the ceiling) under one load: throughput in operations/s, latency in ms."""

    throughput: float
    p50_ms: float | None
    p99_ms: float | None
    count: int
    codes: dict[str, int]

    @classmethod
    def of(cls, latencies: Sequence[float], codes: Sequence[str], seconds: float) -> Measure:
        return cls(
            throughput=len(latencies) / seconds if seconds > 0 else 0.0,
            p50_ms=percentile(latencies, 50),
            p99_ms=percentile(latencies, 99),
            count=len(latencies),
            codes=dict(Counter(codes)),
        )

    @classmethod
    def merge(cls, results: Sequence[dict[str, Any]]) -> Measure:
        """Many processes' results for one run; the run lasted as long as its slowest process."""
        latencies = [ms for r in results for ms in r["latencies_ms"]]
        codes = [c for r in results for c in r["codes"]]
        return cls.of(latencies, codes, max(r["elapsed_s"] for r in results))


@dataclass
class ScenarioResult:
    scenario: str
    variant: str
    offered: str  # the offered load, as a reader would say it ("16 callers", "250/s", "200 racing")
    orflow: Measure
    ceiling: Measure | None = None
    violations: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio_to_ceiling(self) -> float | None:
        if self.ceiling is None or self.ceiling.throughput <= 0:
            return None
        return self.orflow.throughput / self.ceiling.throughput

    @property
    def violation_count(self) -> int:
        return sum(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "offered_load": self.offered,
            "throughput": round(self.orflow.throughput, 1),
            "p50_ms": _round(self.orflow.p50_ms),
            "p99_ms": _round(self.orflow.p99_ms),
            "ratio_to_ceiling": _round(self.ratio_to_ceiling),
            "ceiling": None
            if self.ceiling is None
            else {
                "throughput": round(self.ceiling.throughput, 1),
                "p50_ms": _round(self.ceiling.p50_ms),
                "p99_ms": _round(self.ceiling.p99_ms),
            },
            "count": self.orflow.count,
            "outcomes": self.orflow.codes,
            "violations": self.violation_count,
            "violation_details": self.violations,
            "errors": self.errors,
            **self.extra,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
