"""The bench's outputs: the printed table, the targets verdict, bench-results.json and the PNG chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import ScenarioResult


def _num(value: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_table(results: Sequence[ScenarioResult]) -> str:
    header = (
        "scenario",
        "variant",
        "offered",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "ceiling/s",
        "ceil p99",
        "ratio",
        "viol",
        "errors",
    )
    rows = [header]
    for r in results:
        c = r.ceiling
        rows.append(
            (
                r.scenario,
                r.variant,
                r.offered,
                _num(r.orflow.throughput, "{:,.0f}"),
                _num(r.orflow.p50_ms),
                _num(r.orflow.p99_ms),
                _num(c.throughput if c else None, "{:,.0f}"),
                _num(c.p99_ms if c else None),
                _num(r.ratio_to_ceiling, "{:.2f}"),
                str(r.violation_count),
                ",".join(f"{k}={v}" for k, v in r.errors.items()) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_legs(results: Sequence[ScenarioResult], scenario: str) -> str:
    """One scenario's legs side by side, throughput and p99 as ratios to its first leg ("" if it did not run)."""
    legs = [r for r in results if r.scenario == scenario]
    if not legs:
        return ""
    first = legs[0].orflow
    header = ("variant", "bookings/s", "x", "p50 ms", "p99 ms", "x", "viol", "per server / backends")
    rows = [header]
    for r in legs:
        m = r.orflow
        notes = r.extra.get("calls_per_server", r.extra.get("db_backends_peak", "-"))
        rows.append(
            (
                r.variant,
                _num(m.throughput, "{:,.0f}"),
                _num(_ratio(m.throughput, first.throughput), "{:.2f}"),
                _num(m.p50_ms),
                _num(m.p99_ms),
                _num(_ratio(m.p99_ms, first.p99_ms), "{:.2f}"),
                str(r.violation_count),
                str(notes),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 7) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return f"{scenario} ({legs[0].offered}; x = ratio to {legs[0].variant})\n" + "\n".join(x.rstrip() for x in lines)


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    is_met: bool | None  # None: not measured in this run


def _ratio(big: float | None, small: float | None) -> float | None:
    return None if big is None or not small else big / small


def evaluate_targets(results: Sequence[ScenarioResult]) -> list[Target]:
    """The issue's targets, as ratios to the ceiling measured in the same run, each with what this run measured."""
    by = {(r.scenario, r.variant): r for r in results}
    spread = [r for r in results if r.scenario == "1 spread" and r.variant != "half of peak"]
    targets = []
    for r in spread:
        ratio = r.ratio_to_ceiling
        form = r.extra.get("ceiling_form", "")
        targets.append(
            Target(
                f"spread {r.variant}: ops/s >= 0.8 x ceiling",
                "-" if ratio is None else f"{ratio:.2f} (ceiling: {form})",
                ratio is not None and ratio >= 0.8,
            )
        )
    half = by.get(("1 spread", "half of peak"))
    if half is not None and half.orflow.p99_ms is not None and half.ceiling and half.ceiling.p99_ms:
        half_growth = half.orflow.p99_ms / half.ceiling.p99_ms
        targets.append(
            Target(
                "spread: p99 at half of peak <= 2 x ceiling's p99 at that load",
                f"{half.orflow.p99_ms:.1f} vs {half.ceiling.p99_ms:.1f} ms at {half.offered} = {half_growth:.2f}x",
                half_growth <= 2.0,
            )
        )
    for scenario in ("2 hot slot", "3 last ventilator"):
        rs = [r for r in results if r.scenario == scenario]
        if rs:
            p99 = max(r.orflow.p99_ms or 0.0 for r in rs)
            ceiling_p99 = max((r.ceiling.p99_ms or 0.0) if r.ceiling else 0.0 for r in rs)
            viol = sum(r.violation_count for r in rs)
            race_growth = p99 / ceiling_p99 if ceiling_p99 else float("inf")
            targets.append(
                Target(
                    f"{scenario[2:]}: zero violations, p99 <= 1.1 x ceiling's",
                    f"{viol} violations, p99 {p99:.1f} vs {ceiling_p99:.1f} ms = {race_growth:.2f}x",
                    viol == 0 and race_growth <= 1.1,
                )
            )
    browse = [r for r in results if r.scenario == "4 browse"]
    sizes = sorted(
        {r.variant.split(" ", 1)[0] for r in browse},
        key=lambda s: next(x.extra["slots_in_table"] for x in browse if x.variant.startswith(s + " ")),
    )
    if len(sizes) == 2:
        for r in browse:
            small_label, big_label = sizes
            if r.variant.startswith(big_label + " "):
                rest = r.variant[len(big_label) + 1 :]
                small = by.get(("4 browse", f"{small_label} {rest}"))
                growth = _ratio(r.orflow.p50_ms, small.orflow.p50_ms if small else None)
                if growth is not None:
                    targets.append(
                        Target(
                            f"browse {rest}: p50 {big_label} <= 1.5 x {small_label}", f"{growth:.2f}x", growth <= 1.5
                        )
                    )
    hist = [r for r in results if r.scenario == "5 history"]
    if len(hist) == 2:
        growth = _ratio(hist[1].orflow.p50_ms, hist[0].orflow.p50_ms)
        if growth is not None:
            targets.append(
                Target(f"history: p50 with {hist[1].variant} <= 1.5 x empty", f"{growth:.2f}x", growth <= 1.5)
            )
    for r in results:
        if r.scenario == "6 live updates" and r.orflow.p99_ms is not None:
            # A p99 over the deliveries made says nothing when subscribers missed updates: it is met only with none.
            missed = int(r.extra.get("missed", 0))
            shown = f"{r.orflow.p99_ms:.1f} ms" + (f", {missed} updates missed" if missed else "")
            targets.append(
                Target(f"live: p99 <= 100 ms to {r.variant}, none missed", shown, r.orflow.p99_ms <= 100 and not missed)
            )
        if r.scenario == "7 expiry":
            seconds = r.extra.get("all_failed_s")
            targets.append(
                Target(
                    f"expiry: {r.variant} all FAILED within 5 s",
                    "not all FAILED" if seconds is None else f"{seconds:.2f} s",
                    seconds is not None and seconds <= 5,
                )
            )
    return targets


def compare_to_baseline(results: Sequence[ScenarioResult], baseline: dict[str, Any]) -> str:
    """Each figure beside the same scenario's in an earlier bench-results.json, as now/then ratios.

    Throughput ratio > 1 is faster now; a p50/p99 ratio < 1 is faster now.
    """
    then = {(row["scenario"], row["variant"]): row for row in baseline.get("scenarios", [])}
    header = ("scenario", "variant", "ops/s", "then", "x", "p50 ms", "then", "x", "p99 ms", "then", "x")
    rows = [header]
    for r in results:
        old = then.get((r.scenario, r.variant))
        if old is None:
            rows.append((r.scenario, r.variant, _num(r.orflow.throughput, "{:,.0f}"), "-", "new", *("-",) * 6))
            continue
        rows.append(
            (
                r.scenario,
                r.variant,
                _num(r.orflow.throughput, "{:,.0f}"),
                _num(old.get("throughput"), "{:,.0f}"),
                _num(_ratio(r.orflow.throughput, old.get("throughput")), "{:.2f}"),
                _num(r.orflow.p50_ms),
                _num(old.get("p50_ms")),
                _num(_ratio(r.orflow.p50_ms, old.get("p50_ms")), "{:.2f}"),
                _num(r.orflow.p99_ms),
                _num(old.get("p99_ms")),
                _num(_ratio(r.orflow.p99_ms, old.get("p99_ms")), "{:.2f}"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    note = baseline.get("note")
    return "\n".join(lines) + (f"\n(baseline: {note})" if note else "")


def format_targets(targets: Sequence[Target]) -> str:
    return "\n".join(f"  [{'met' if t.is_met else 'MISSED'}] {t.name}: {t.measured}" for t in targets)


def write_json(path: Path, results: Sequence[ScenarioResult], targets: Sequence[Target], meta: dict[str, Any]) -> None:
    document = {
        **meta,
        "scenarios": [r.to_json() for r in results],
        "targets": [{"target": t.name, "measured": t.measured, "met": t.is_met} for t in targets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def draw_chart(path: Path, results: Sequence[ScenarioResult]) -> str | None:
    """Throughput and p50/p99 against offered load (spread); otherwise why there is no chart."""
    spread = [r for r in results if r.scenario == "1 spread" and r.variant != "half of peak" and r.ceiling]
    if not spread:
        return "no chart: the spread scenario did not run"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install -e '.[dev]')"
    callers = [int(r.variant.split()[0]) for r in spread]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(callers, [r.orflow.throughput for r in spread], "o-", label="OR Flow (gRPC)")
    left.plot(callers, [r.ceiling.throughput for r in spread if r.ceiling], "s--", label="ceiling (asyncpg, no RPC)")
    left.set(title="Spread: bookings/s", xlabel="concurrent callers (offered load)", ylabel="bookings/s", xscale="log")
    left.legend()
    right.plot(callers, [r.orflow.p50_ms for r in spread], "o-", label="OR Flow p50")
    right.plot(callers, [r.orflow.p99_ms for r in spread], "o-", label="OR Flow p99")
    right.plot(callers, [r.ceiling.p50_ms for r in spread if r.ceiling], "s--", label="ceiling p50")
    right.plot(callers, [r.ceiling.p99_ms for r in spread if r.ceiling], "s--", label="ceiling p99")
    right.set(
        title="Spread: latency", xlabel="concurrent callers (offered load)", ylabel="ms", xscale="log", yscale="log"
    )
    right.legend()
    left.set_ylim(bottom=0)
    for ax in (left, right):
        ax.set_xticks(callers, [str(c) for c in callers])
        ax.set_xticks([], minor=True)  # log-scale minor labels would overprint the callers
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
