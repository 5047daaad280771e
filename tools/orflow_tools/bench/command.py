"""`orflow bench` (an `orflow.commands` entry point): runs the bench and prints the table and the verdict."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from orflow_server.settings import Settings

from .. import embedded
from . import report, scaleout
from .config import PRESETS
from .results import ScenarioResult
from .runner import run_bench


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="size", help="a 1-2 minute version")
    size.add_argument("--smoke", action="store_const", const="smoke", dest="size", help="tiny sizes (the test suite's)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where bench-results.json and bench-chart.png go")
    parser.add_argument(
        "--target", help="host:port of a running stack (its database, from ORFLOW_DATABASE_URL, is emptied)"
    )
    parser.add_argument(
        "--server-processes", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)"
    )
    parser.add_argument("--processes", type=int, help="client processes (default 4)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="an earlier bench-results.json (e.g. the last release's, in orflow_tools/bench/baselines/): "
        "prints every figure beside it, as ratios",
    )
    parser.add_argument("--note", default="", help="stored in bench-results.json (e.g. the machine and its load)")
    parser.add_argument(
        "--only",
        default="",
        help="scenarios to run by number or letter, e.g. 16, or m (multi-process), b (PgBouncer), o (overload) "
        "(default: all)",
    )


def cmd_bench(settings: Settings, args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    baseline = None
    if args.baseline is not None:
        try:
            baseline = json.loads(args.baseline.read_text())
        except (OSError, ValueError) as exc:
            print(f"orflow: cannot read the baseline {args.baseline}: {exc}", file=sys.stderr)
            return 2
    config = PRESETS[args.size or "full"]
    if args.processes:
        config = replace(config, processes=args.processes)
    run = asyncio.run(
        run_bench(
            settings,
            config,
            out_dir=args.out,
            target=args.target,
            server_processes=args.server_processes,
            only=frozenset(args.only),
            environ=environ,
            note=args.note,
        )
    )
    results = sorted(run.results, key=_scenario_order)
    print("\nOR Flow bench (ratio = OR Flow ops/s / ceiling ops/s, same client processes and connections)\n")
    print(report.format_table(results))
    for scenario in (scaleout.MULTI, scaleout.POOLER):
        legs = report.format_legs(results, scenario)
        if legs:
            print(f"\n{legs}")
    if (not args.only or "b" in args.only) and not any(r.scenario == scaleout.POOLER for r in results):
        why = scaleout.pooler_skip_reason(run.database_url) or "a --target run starts no servers"
        print(f"\n{scaleout.POOLER}: skipped ({why})")
    forms = [f"{r.variant}: {r.extra['ceiling_form']}" for r in results if "ceiling_form" in r.extra]
    if forms:
        print("\nCeiling (the faster raw form of the same rule in this run): " + "; ".join(forms))
    print(f"\nTargets:\n{report.format_targets(run.targets)}")
    if baseline is not None:
        print(f"\nBefore/after: this run / {args.baseline} (ops/s x > 1 and ms x < 1 are better now)\n")
        print(report.compare_to_baseline(results, baseline))
    verdict = "PASS" if run.violations == 0 and run.errors == 0 else "FAIL"
    print(
        f"\n{verdict}: {run.violations} invariant violations, {run.errors} unexpected errors, "
        f"{sum(1 for t in run.targets if t.is_met)}/{len(run.targets)} targets met, {run.seconds:.0f} s. "
        f"Wrote {args.out / 'bench-results.json'} and {args.out / 'bench-chart.png'}."
    )
    sys.stdout.flush()
    return 0 if verdict == "PASS" else 1


def _scenario_order(result: ScenarioResult) -> tuple[int, int, str]:
    """Numbered scenarios in number order, then the lettered ones (m, b, o) in the order they ran."""
    key = result.scenario.split(" ", 1)[0]
    return (0, int(key), "") if key.isdigit() else (1, 0, "")


class BenchCommand:
    help = "load test OR Flow against the database's own ceiling"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        try:
            return cmd_bench(Settings.from_env(environ), args, environ)
        except embedded.EmbeddedServiceError as exc:
            print(f"orflow: {exc}", file=sys.stderr)
            return 1


COMMAND = BenchCommand()
