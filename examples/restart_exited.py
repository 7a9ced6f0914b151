"""Start again every exited container whose restart policy is not "no", as a daemon does after
a reboot: "always" and "on-failure" containers are started, "unless-stopped" ones too unless
their user stopped them. Each start returns once the process runs; a start that fails leaves the
container dead, says why, and makes the exit status 1.

Examples:
  python examples/restart_exited.py --dry-run
  python examples/restart_exited.py --root /var/lib/berth
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from fsm import BerthError, Orchestrator


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="berth's data root (default: $BERTH_ROOT, else berth's)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: $BERTH_DATABASE_URL, else "
                   "the SQLite file in the root)")
    p.add_argument("--dry-run", action="store_true", help="only print what would be started")
    return p


def policy_text(policy: dict[str, Any]) -> str:
    if policy["name"] == "on-failure" and policy.get("maximum_retry_count"):
        return f"on-failure:{policy['maximum_retry_count']}"
    return str(policy["name"])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    failures = 0
    with Orchestrator(database_url=args.database_url, root=args.root) as orc:
        for c in orc.list(state="exited"):
            policy = c.host_config["restart_policy"]
            what = f"{c.short_id} {c.name} (restart policy {policy_text(policy)})"
            if policy["name"] == "no":
                continue
            if policy["name"] == "unless-stopped" and c.manually_stopped:
                print(f"skipped {what}: its user stopped it")
                continue
            if args.dry_run:
                print(f"would start {what}")
                continue
            try:
                orc.start(c.id)
            except BerthError as error:
                print(f"cannot start {what}: {error}", file=sys.stderr)
                failures += 1
            else:
                print(f"started {what}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
