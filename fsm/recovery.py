"""Recovery: make the database and this host agree again after a crash.

- A row in an in-flight state whose lease has expired, or whose owner on this node is dead
  (the owner id carries the pid and its start time, so that is known at once), is taken over:
  ``fail`` runs its undo steps (runtime container deleted, network released, rootfs put; each
  idempotent) and the row becomes ``dead`` with ``error: interrupted``. A ``stopping`` row
  instead gets its process killed and ``exit``.
- A layer row left ``applying`` or ``removing`` by a dead process of this node: a container's
  layer whose container row exists is kept; anything else is removed, driver first
  (:func:`fsm.steps.layers.recover_layers`), and scratch directories of dead pulls go.
- An exec session whose caller died has its process killed and its directory removed, and an
  ``exec_die`` (137, ``interrupted``) recorded.
- A ``running`` row whose run's conmon recorded the exit gets ``exit`` with that status. A live
  conmon is left to report it: nothing changes. A dead conmon without a record gets its process
  ended and ``exit`` 128 with ``error`` saying the monitor died.

Only rows of this node are touched: their host resources are here. With nothing in flight or
running, recovery is one indexed query. The report names only what recovery changed.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from drivers.errors import HostError
from fsm import states
from fsm.container import LiveContainer
from fsm.errors import BerthError, ConcurrentTransition
from fsm.owner import owner_is_alive
from fsm.runner import Runner
from fsm.sessions import recover_sessions
from fsm.steps.layers import recover_layers
from models import utcnow

INTERRUPTED = "interrupted"
#: the error of a run whose monitor (conmon) died before it could record the exit
MONITOR_DIED = "the container's monitor (conmon) died: its exit code is unknown"
#: how long an interrupted stop waits for the killed process to be reported
KILLED_REPORT_SECONDS = 10.0


def recover(runner: Runner) -> dict[str, list[str]]:
    """Reconcile; returns what was changed: ``{"failed": [ids], "exited": [ids]}``, and
    ``"layers": [ids]`` when layers a dead writer or remover left were undone."""
    report: dict[str, list[str]] = {"failed": [], "exited": []}
    host = runner.host
    node = host.settings.node
    now = utcnow()
    for container, lease_expires_at in runner.db.containers.in_states(
            node, [*states.IN_FLIGHT, states.RUNNING]):
        try:
            if container.state == states.RUNNING:
                _reconcile_running(runner, container, report)
            elif _abandoned(container, lease_expires_at, now, node):
                _take_over(runner, container, report)
        except ConcurrentTransition:
            pass  # someone else moved it meanwhile: theirs to finish
    # after the containers: a container's layer is judged by whether its row exists
    undone = recover_layers(host)
    if undone:
        report["layers"] = undone
    sessions = recover_sessions(host)
    if sessions:
        report["exec sessions"] = sessions
    return report


def _abandoned(container: LiveContainer, lease_expires_at: datetime | None, now: datetime,
               node: str) -> bool:
    if container.owner is not None and owner_is_alive(container.owner, node) is False:
        return True
    return lease_expires_at is None or lease_expires_at <= now


def _take_over(runner: Runner, container: LiveContainer, report: dict[str, list[str]]) -> None:
    if container.state == states.STOPPING:
        if runner.fire_exit(container.id, container.run, _finish_process(runner, container)):
            report["exited"].append(container.id)
        return
    runner.fail(container, INTERRUPTED)
    report["failed"].append(container.id)


def _reconcile_running(runner: Runner, container: LiveContainer,
                       report: dict[str, list[str]]) -> None:
    runtime, paths = runner.host.runtime, runner.host.run_paths(container)
    status = runtime.exit_status(paths)
    if status is None and runtime.monitor_alive(paths):
        # conmon records the exit when it comes (it may be between the process's end and
        # writing its exit file right now)
        return
    error = None
    if status is None:
        # conmon is gone without a record (killed): nothing will ever report this run's end,
        # so the process, if it still runs unwatched, is ended here
        error = MONITOR_DIED
        with contextlib.suppress(BerthError, HostError):
            runtime.delete(container.id)
    if runner.fire_exit(container.id, container.run, status.exit_code if status else 128,
                        error=error):
        report["exited"].append(container.id)


def _finish_process(runner: Runner, container: LiveContainer) -> int:
    """The stop was interrupted: finish it, and say how the process ended."""
    runtime, paths = runner.host.runtime, runner.host.run_paths(container)
    status = runtime.exit_status(paths)
    if status is None:
        runtime.delete(container.id)  # kills it
        status = runtime.wait_for_exit(paths, KILLED_REPORT_SECONDS)
    return status.exit_code if status else 137
