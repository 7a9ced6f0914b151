"""Named crash points: a test kills the process at an exact side-effect boundary.

Recovery code is only as good as the crashes it has seen. Code that changes the host calls
``crash_point("dm.after_create_snap")`` between two steps; a test runs it in a subprocess with
``BERTH_CRASH_AT=dm.after_create_snap`` and the process dies right there, by SIGKILL, so no
``finally`` block, ``atexit`` hook or database rollback gets to tidy up. A fresh process then has
to reconcile what is left, exactly as after a power cut.

The variable is read once, when this module is imported: the tests set it in the environment
of the process they start, and outside tests a crash point costs one comparison.
"""

from __future__ import annotations

import os
import signal

CRASH_AT_ENV = "BERTH_CRASH_AT"
_CRASH_AT = os.environ.get(CRASH_AT_ENV)


def crash_point(name: str) -> None:
    """Die at once, by SIGKILL, when ``$BERTH_CRASH_AT`` equals ``name``.

    Example: ``crash_point("dm.after_mount")`` right after a mount and before the database
    records it.
    """
    if name == _CRASH_AT:
        os.kill(os.getpid(), signal.SIGKILL)
