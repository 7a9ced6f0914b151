"""Recovery: make the database and this host agree again after a crash.

- A row in an in-flight state whose lease has expired, or whose owner on this node is dead
  (the owner id carries the pid and its start time, so that is known at once), is taken over:
  ``fail`` runs its undo steps (runtime container deleted, network released, rootfs put; each
  idempotent) and the row becomes ``dead`` with ``error: interrupted``. A ``stopping`` row
  instead gets its process killed and ``exit``.
- A ``running`` row whose process is gone gets ``exit`` with the status the shim recorded, else
  128. A live process is left to its shim (re-adopted).

Only rows of this node are touched: their host resources are here. With nothing in flight or
running, recovery is two indexed queries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fsm import states
from fsm.container import LiveContainer
from fsm.errors import ConcurrentTransition
from fsm.owner import owner_is_alive, process_start_ticks
from fsm.stored import read_time
from models import utcnow

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator

INTERRUPTED = "interrupted"


def recover(orc: Orchestrator) -> dict[str, list[str]]:
    """Reconcile; returns what was done: ``{"failed": [...], "exited": [...], "adopted": [...]}``
    with container ids."""
    report: dict[str, list[str]] = {"failed": [], "exited": [], "adopted": [], "skipped": []}
    node = orc.settings.node
    now = utcnow()
    watched = [*states.IN_FLIGHT, states.RUNNING]
    rows = orc.sql.fetch_all(*orc.sql.live_in_states(node, watched))
    for row in rows:
        container = LiveContainer.from_stored(orc, row[:-1])
        lease_expires_at = read_time(row[-1])
        try:
            if container.state == states.RUNNING:
                _reconcile_running(orc, container, report)
            elif _abandoned(container, lease_expires_at, now, node):
                _take_over(orc, container, report)
        except ConcurrentTransition:
            report["skipped"].append(container.id)
    return report


def _abandoned(container: LiveContainer, lease_expires_at: object, now: object, node: str) -> bool:
    if container.owner is not None and owner_is_alive(container.owner, node) is False:
        return True
    return lease_expires_at is None or lease_expires_at <= now  # type: ignore[operator]


def _take_over(orc: Orchestrator, container: LiveContainer, report: dict[str, list[str]]) -> None:
    if container.state == states.STOPPING:
        status = _finish_process(orc, container)
        orc._fire(container, "exit", exit_code=status)
        report["exited"].append(container.id)
        return
    orc._fire(container, "fail", error=INTERRUPTED)
    report["failed"].append(container.id)


def _reconcile_running(orc: Orchestrator, container: LiveContainer,
                       report: dict[str, list[str]]) -> None:
    paths = orc.paths(container.id)
    status = orc.runtime.exit_status(paths)
    if status is None and (orc.runtime.shim_alive(paths) or _process_alive(container.pid)):
        # the shim records the exit when it comes (it may be between the process's end and
        # writing exit.json right now)
        report["adopted"].append(container.id)
        return
    orc._fire(container, "exit", exit_code=status.exit_code if status else 128)
    report["exited"].append(container.id)


def _finish_process(orc: Orchestrator, container: LiveContainer) -> int:
    """The stop was interrupted: finish it, and say how the process ended."""
    paths = orc.paths(container.id)
    status = orc.runtime.exit_status(paths)
    if status is None:
        orc.runtime.delete(container.id)  # kills it
        status = orc.runtime.wait_for_exit(paths, 10)
    return status.exit_code if status else 137


def _process_alive(pid: int | None) -> bool:
    return pid is not None and process_start_ticks(pid) is not None


