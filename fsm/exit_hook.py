"""Run by the shim when a run's process has ended: ``python -m fsm.exit_hook ID RUN CODE``.

It fires ``exit`` for that run (an earlier run's late report changes nothing) and applies the
restart policy. It reconciles nothing else: no recovery of the node on every exit. The shim does
not run it when an ``Orchestrator.wait`` or ``stop`` was waiting, has fired ``exit`` itself and
found no restart or auto-removal due (``drivers.runtime.shim._exit_handled``).

The settings come from the environment the shim was given (BERTH_ROOT, BERTH_DATABASE_URL,
BERTH_STORAGE, BERTH_RUNTIME), so the URL never shows in ``ps``.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    container_id, run, exit_code = argv[0], int(argv[1]), int(argv[2])
    from fsm.orchestrator import Orchestrator
    from fsm.restart import after_exit

    orc = Orchestrator(
        storage=os.environ.get("BERTH_STORAGE") or None,
        runtime=os.environ.get("BERTH_RUNTIME", "runc"),
        storage_options=json.loads(os.environ.get("BERTH_STORAGE_OPTIONS") or "{}"),
        recover=False,
    )
    try:
        orc.handle_exit(container_id, run, exit_code)
        after_exit(orc.runner, container_id, run)
    finally:
        orc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
