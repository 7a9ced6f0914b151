"""conmon's exit command: runs berth's exit hook for a run that ended, unless it is not needed.

``python -I -S exit_gate.py EXIT_FILE WAITER_FILE HANDLED_FILE STARTER_PID HOOK...``: conmon runs
it after writing the run's exit code to ``EXIT_FILE``. The hook (``fsm.exit_hook``, the exit
code appended) is a new interpreter that imports SQLAlchemy and the orchestrator, about 0.7 s of
CPU, to fire ``exit`` and apply the restart policy. When an orchestrator was waiting for this exit
(``wait``, ``stop``), it fires ``exit`` itself and then writes its verdict: this exit's time and
whether the hook is still needed (a restart policy, an auto-removal). A waiter announces itself
in ``WAITER_FILE`` (its pid); the verdict is in ``HANDLED_FILE``. Without a live waiter (one may
still arrive for a moment while the orchestrator that started the container lives), without its
verdict in time, or with a verdict about another exit, the hook runs: an exit is never left
unhandled.

Stdlib only, and few modules: it runs on every exit. No exit file means ``runtime create``
failed: there was no run to report.
"""

from __future__ import annotations

import os
import sys
import time

#: how long a registered waiter's verdict is waited for (it normally comes within
#: milliseconds: the waiter only commits ``exit``); after this the hook runs anyway
WAITER_GRACE_SECONDS = 10.0
#: left in the run's exit directory when the hook ran (for an operator, and the benchmarks)
HOOK_RAN = "hook"
#: a process that exits at once may end before its starter has even returned from ``start``
#: and called ``wait``: while the starter lives, a waiter is given this long to show up
WAITER_ARRIVAL_SECONDS = 0.05


def main(argv: list[str]) -> int:
    exit_file, waiter_file, handled_file, starter = argv[0], argv[1], argv[2], int(argv[3])
    hook = argv[4:]
    try:
        with open(exit_file, "rb") as source:
            exit_code = int(source.read())
            finished_at = os.fstat(source.fileno()).st_mtime
    except (OSError, ValueError):
        return 0
    if not hook or handled_elsewhere(waiter_file, handled_file, finished_at, starter):
        return 0
    with open(os.path.join(os.path.dirname(exit_file), HOOK_RAN), "w"):
        pass
    # the hook replaces this process: conmon waits for it, as it would for the gate
    os.execv(hook[0], [*hook, str(exit_code)])


def handled_elsewhere(waiter_file: str, handled_file: str, finished_at: float,
                      starter: int) -> bool:
    now = time.monotonic()
    deadline, arrival_deadline = now + WAITER_GRACE_SECONDS, now + WAITER_ARRIVAL_SECONDS
    delay = 0.001
    while True:
        try:
            with open(handled_file) as source:
                handled_at, needed = source.read().split()
            if float(handled_at) == finished_at:
                return needed == "done"
        except (OSError, ValueError):
            pass  # no verdict yet (or a partial one)
        now = time.monotonic()
        if now >= deadline:
            return False
        if not _alive(_read_pid(waiter_file)) and (
                now >= arrival_deadline or not _alive(starter)):
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def _read_pid(path: str) -> int:
    try:
        with open(path) as source:
            return int(source.read())
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    if pid <= 1:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
