"""Run by the shim when a container's process has ended: ``python -m fsm.exit_hook ID CODE``.

It fires ``exit`` and applies the restart policy. The shim does not run it when an
``Orchestrator.wait`` was waiting, has fired ``exit`` itself and found no restart or auto-removal
due (``drivers.runtime.shim._exit_handled``): this interpreter, SQLAlchemy and the orchestrator
cost ~0.7 s of CPU to find the row already exited.

The orchestrator's settings come from the environment the shim was given (BERTH_ROOT,
BERTH_DATABASE_URL, BERTH_STORAGE, BERTH_RUNTIME), so the URL never shows in ``ps``.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    container_id, exit_code = argv[0], int(argv[1])
    from fsm.orchestrator import Orchestrator
    from fsm.restart import after_exit

    orc = Orchestrator(
        storage=os.environ.get("BERTH_STORAGE") or None,
        runtime=os.environ.get("BERTH_RUNTIME", "runc"),
        storage_options=json.loads(os.environ.get("BERTH_STORAGE_OPTIONS") or "{}"),
    )
    try:
        orc.handle_exit(container_id, exit_code)
        after_exit(orc, container_id)
    finally:
        orc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
