"""Remove containers that stopped long ago: dead (a failed start or removal) or exited, for
longer than --older-than (default: one day). Running, created and in-flight containers are never
touched. Their events and history stay in the database.

Examples:
  python examples/reap_dead.py --dry-run
  python examples/reap_dead.py --older-than 6h --state dead
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fsm import BerthError, Orchestrator

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use 30s, 10m, 2h or 1d")
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="berth's data root (default: $BERTH_ROOT, else berth's)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: $BERTH_DATABASE_URL, else "
                   "the SQLite file in the root)")
    p.add_argument("--older-than", type=duration, default=timedelta(days=1), metavar="AGE",
                   help="how long ago the container must have stopped: 30s, 10m, 2h, 1d "
                   "(default 1d)")
    p.add_argument("--state", action="append", choices=["dead", "exited"],
                   help="which stopped states to reap (repeatable; default both)")
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cutoff = datetime.now(UTC) - args.older_than
    failures = 0
    with Orchestrator(database_url=args.database_url, root=args.root) as orc:
        for c in orc.list(state=args.state or ["dead", "exited"]):
            stopped = c.finished_at or c.created_at
            if stopped > cutoff:
                continue
            age = datetime.now(UTC) - stopped
            what = f"{c.short_id} {c.name} ({c.state} {_human(age)} ago)"
            if args.dry_run:
                print(f"would remove {what}")
                continue
            try:
                orc.remove(c.id)
            except BerthError as error:
                print(f"cannot remove {what}: {error}", file=sys.stderr)
                failures += 1
            else:
                print(f"removed {what}")
    return 1 if failures else 0


def _human(age: timedelta) -> str:
    seconds = age.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


if __name__ == "__main__":
    sys.exit(main())
