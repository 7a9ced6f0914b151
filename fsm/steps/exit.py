"""What ``exit`` and the error edge (``fail``) do: undo every step of ``start`` in reverse, then
record how the run ended. The undo steps are idempotent: recovery may run them again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import wraps

from transitions import EventData

from drivers.crashpoints import crash_point
from drivers.errors import HostError
from drivers.runtime.shm import unmount_shm
from fsm.container import LiveContainer
from fsm.errors import BerthError, host_errors
from fsm.steps import network
from fsm.steps.host import Host, container_of, host_of
from models import utcnow

Step = Callable[[EventData], None]


def _undo_step(step: Callable[[LiveContainer, Host], None]) -> Step:
    """An undo never stops the error edge: what it cannot do is recorded in ``error``."""

    @wraps(step)
    def run(event: EventData) -> None:
        container = container_of(event)
        try:
            step(container, host_of(event))
        except (BerthError, HostError, OSError) as error:
            container.undo_errors.append(f"{step.__name__}: {error}")

    return run


@_undo_step
def stop_process(container: LiveContainer, host: Host) -> None:
    """Kill and delete the runtime's container, and its bundle (the logs stay)."""
    with host_errors():
        host.runtime.delete(container.id)
    shutil.rmtree(host.paths(container.id).bundle, ignore_errors=True)
    crash_point("undo.after_stop_process")


@_undo_step
def release_network(container: LiveContainer, host: Host) -> None:
    network.release_network(container, host)
    crash_point("undo.after_release_network")


@_undo_step
def release_ipc(container: LiveContainer, host: Host) -> None:
    if not has_own_shm(container.host_config["ipc_mode"]):
        return
    with host_errors():
        unmount_shm(host.paths(container.id).shm)


@_undo_step
def put_rootfs(container: LiveContainer, host: Host) -> None:
    with host_errors():
        host.storage.put(container.id)
    crash_point("undo.after_put_rootfs")


def record_exit(event: EventData) -> None:
    """How the run ended: its exit code, and an ``error`` when it was not the process's own
    (its monitor died, the kernel's OOM killer ended it) or an undo step failed."""
    container = container_of(event)
    exit_code = int(event.kwargs.get("exit_code", 128))
    error = "; ".join([*filter(None, [event.kwargs.get("error")]), *container.undo_errors])
    container.set(exit_code=exit_code, finished_at=utcnow(), pid=None, error=error)
    attributes = {"exitCode": exit_code, **({"error": error} if error else {})}
    container.emit("die", **attributes)
    if container.state == "stopping":
        container.emit("stop")


def record_failure(event: EventData) -> None:
    """The seed's deferred error path: SetError, exit code 128 when still 0, then ``die``."""
    container = container_of(event)
    error = "; ".join([str(event.kwargs.get("error", "failed")), *container.undo_errors])
    exit_code = container.exit_code or 128
    container.set(error=error, exit_code=exit_code, finished_at=utcnow(), pid=None)
    container.emit("die", exitCode=exit_code, error=error)


def has_own_shm(ipc_mode: str) -> bool:
    """Whether the container mounts a /dev/shm of its own: the host's IPC namespace has the
    host's, and a joiner binds its owner's."""
    return not (ipc_mode == "host" or ipc_mode.startswith("container:"))
