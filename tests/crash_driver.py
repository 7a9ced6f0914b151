"""A real orchestrator process for crash tests: ``python -m tests.crash_driver ROOT URL OP ARG``
(ARG: a container id, in which ``exec`` runs ``sleep 600``; for ``load`` a path, ``pull`` a
reference, ``rmi`` and ``create`` an image).

The test sets ``BERTH_CRASH_AT`` to a crash point; the process kills itself with SIGKILL there,
as a power cut would, leaving whatever it had done on the host and in the database.

The storage driver is the one ``BERTH_STORAGE`` names (berth's own choice without it), with
``BERTH_STORAGE_OPTIONS`` (JSON) as its options: the variables the exit hook reads too
(``tests/dm/test_images.py``).
"""

from __future__ import annotations

import json
import os
import sys

from fsm import BerthError, Orchestrator


def main(root: str, database_url: str, operation: str, container_id: str) -> int:
    orc = Orchestrator(database_url=database_url, root=root,
                       storage=os.environ.get("BERTH_STORAGE") or None,
                       storage_options=json.loads(os.environ.get("BERTH_STORAGE_OPTIONS") or "{}"))
    try:
        if operation == "start":
            orc.start(container_id)
        elif operation == "stop":
            orc.stop(container_id, timeout=5)
        elif operation == "remove":
            orc.remove(container_id, force=True)
        elif operation == "load":
            orc.load(container_id)
        elif operation == "pull":
            orc.pull(container_id, tls_verify=False)
        elif operation == "rmi":
            orc.remove_image(container_id)
        elif operation == "create":
            orc.create(container_id, network_mode="none")
        elif operation == "exec":
            orc.exec(container_id, ["sleep", "600"])
        else:
            raise SystemExit(f"unknown operation {operation}")
    except BerthError as error:
        print(f"berth error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
