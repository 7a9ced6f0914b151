"""One of the racing processes: ``python -m tests.race_worker ROOT URL SECONDS SEED ID...``.

Starts, stops and removes the given containers at random until the time is up; prints one JSON
line with what happened. Losing a race is expected (a clear BerthError); anything else is a bug.
"""

from __future__ import annotations

import json
import random
import sys
import time

from fsm import (
    BerthError,
    ConcurrentTransition,
    InvalidState,
    NoSuchContainer,
    Orchestrator,
)


def main(root: str, url: str, seconds: str, seed: str, *ids: str) -> int:
    rng = random.Random(int(seed))
    # storage=None: the driver the root's layers live in
    orc = Orchestrator(database_url=url, root=root, storage=None)
    counts: dict[str, int] = {}
    unexpected: list[str] = []
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        container_id = rng.choice(ids)
        operation = rng.choice(["start", "start", "stop", "remove"])
        try:
            if operation == "start":
                orc.start(container_id)
            elif operation == "stop":
                orc.stop(container_id, timeout=1)
            else:
                orc.remove(container_id, force=True)
            outcome = "ok"
        except (ConcurrentTransition, InvalidState, NoSuchContainer) as lost:
            outcome = type(lost).__name__
        except BerthError as error:
            outcome = type(error).__name__
            unexpected.append(f"{operation} {container_id[:12]}: {error}")
        key = f"{operation}:{outcome}"
        counts[key] = counts.get(key, 0) + 1
    orc.close()
    print(json.dumps({"counts": counts, "unexpected": unexpected}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
