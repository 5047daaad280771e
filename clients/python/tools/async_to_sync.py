"""Writes the blocking client (`blocking.py`) from the asyncio one (`aio.py`), so the two cannot drift.

The asyncio client is the one written by hand. This script rewrites it through ONE table of
replacements (below: every place where blocking code differs from asyncio code), then lets ruff
sort the imports and format the result, the way psycopg's tools/async_to_sync.py does with black.

    .venv/bin/python clients/python/tools/async_to_sync.py           # rewrite blocking.py
    .venv/bin/python clients/python/tools/async_to_sync.py --check   # exit 1 if blocking.py is stale
    .venv/bin/python clients/python/tools/async_to_sync.py --out DIR # write DIR/blocking.py instead

A replacement that no longer matches anything in aio.py is an error, so the table stays true.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "orflow_client"
SOURCE = PACKAGE / "aio.py"
TARGET = PACKAGE / "blocking.py"
COMMAND = ".venv/bin/python clients/python/tools/async_to_sync.py"
HEADER = (
    "# Generated from aio.py by clients/python/tools/async_to_sync.py. DO NOT EDIT:\n"
    f"# change aio.py (or the tool's replacement table) and run `{COMMAND}`.\n"
)

# (pattern, replacement), applied in this order to the whole text (re.MULTILINE).
REPLACEMENTS: list[tuple[str, str]] = [
    # Words in docstrings.
    (r"\bthe asyncio client\b", "the blocking client"),
    (r"\bAn asyncio client\b", "A blocking client"),
    (r"\basync iterators\b", "iterators"),
    (r"\(or cancel the task\)", "(or close the generator)"),
    (r"\bOrFlowClient\b", "BlockingOrFlowClient"),
    # Sleeping between CreateBooking retries.
    (r"^import asyncio$", "import time"),
    (r"\basyncio\.sleep\(", "time.sleep("),
    # Channels: grpc.aio.insecure_channel -> grpc.insecure_channel, grpc.aio.Channel -> grpc.Channel.
    (r"\bgrpc\.aio\.", "grpc."),
    (r"\.close\(grace=None\)", ".close()"),  # grpc-stubs makes aio's `grace` required; blocking has none
    # Types: a blocking call returns the value itself, a stream is a plain iterator.
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\bAwaitable, ", ""),
    # The context manager protocol.
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    # `(await self._call(...)).booking` -> `self._call(...).booking`
    (r"\(await ([^\n]*)\)\.", r"\1."),
    (r"\basync (def|for|with) ", r"\1 "),
    (r"\bawait ", ""),
    # A loop that only re-yields becomes `yield from` (ruff's UP028; async generators cannot use it).
    (r"^( *)for (\w+) in ([^\n]+):\n\1    yield \2\n", r"\1yield from \3\n"),
    # grpc-stubs types the aio call's cancel() but not the blocking one's.
    (r"^( *)call\.cancel\(\)$", r"\1call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leaves it untyped"),
]


def convert(source: str) -> str:
    """The blocking module's text, before formatting."""
    for pattern, replacement in REPLACEMENTS:
        source, count = re.subn(pattern, replacement, source, flags=re.MULTILINE)
        if count == 0:
            raise SystemExit(f"async_to_sync: {pattern!r} matches nothing in aio.py; update the table")
    return HEADER + source


def _ruff(*args: str, source: str) -> str:
    """Runs ruff (the project's pinned one) on `source` as if it were blocking.py, so its settings apply."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"async_to_sync: ruff {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def render() -> str:
    """The full text blocking.py must have: converted, imports sorted, formatted."""
    converted = convert(SOURCE.read_text(encoding="utf-8"))
    sorted_imports = _ruff("check", "--quiet", "--fix", "--select", "I", "--exit-zero", source=converted)
    return _ruff("format", "--quiet", source=sorted_imports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Writes blocking.py from aio.py.")
    parser.add_argument("--check", action="store_true", help="exit 1 if blocking.py differs from aio.py's rewrite")
    parser.add_argument("--out", type=Path, help="write <OUT>/blocking.py instead of the package's")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    out = args.out / TARGET.name if args.out else TARGET
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
