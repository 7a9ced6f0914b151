"""A per-image usage report: how many containers each image has, in which states, and the size
of each image's layers (bytes of their files), with totals. Images no container uses can
go with `berth image rm`.

Examples:
  python examples/image_usage.py
  python examples/image_usage.py --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from fsm import Orchestrator, states


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="berth's data root (default: $BERTH_ROOT, else berth's)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: $BERTH_DATABASE_URL, else "
                   "the SQLite file in the root)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    return p


def report(orc: Orchestrator) -> dict[str, Any]:
    by_image: dict[str, Counter[str]] = {}
    for c in orc.list(all=True):
        by_image.setdefault(c.image_id, Counter())[c.state] += 1
    images = []
    for image in orc.images():
        counts = by_image.get(image.id, Counter())
        images.append({
            "name": image.name, "id": image.id, "storage_driver": image.storage_driver,
            "size": image.size, "containers": sum(counts.values()),
            # in lifecycle order
            "states": {s: counts[s] for s in states.STATES if counts[s]},
        })
    return {"images": images,
            "total_size": sum(i["size"] for i in images),
            "total_containers": sum(i["containers"] for i in images)}


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with Orchestrator(database_url=args.database_url, root=args.root) as orc:
        data = report(orc)
    if args.format == "json":
        print(json.dumps(data, indent=2))
        return 0
    rows = [["IMAGE", "DRIVER", "SIZE", "CONTAINERS", "BY STATE"]]
    for i in data["images"]:
        by_state = ", ".join(f"{s}={n}" for s, n in i["states"].items()) or "unused"
        rows.append([i["name"], i["storage_driver"], human(i["size"]), str(i["containers"]),
                     by_state])
    rows.append(["TOTAL", "", human(data["total_size"]), str(data["total_containers"]), ""])
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
