"""The side effects of the lifecycle, one function per step, referenced by name from
``fsm/states.py``. Each receives the ``transitions`` event; ``event.model`` is the
:class:`~fsm.container.LiveContainer` being driven.

The steps of ``start`` follow the seed's ``containerStart``: mount the rootfs, default the network
mode and set up the network, working directory, environment (with links), command, IPC dirs and
mounts, then start the process and wait until it really runs. The undo steps are idempotent: they
run on the error edge, on exit, and again from recovery.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from drivers.crashpoints import crash_point
from drivers.errors import HostError
from drivers.runtime.bundle import BundleSpec, Mount
from drivers.runtime.shm import mount_shm, unmount_shm
from fsm import networking
from fsm.errors import BerthError, host_errors
from fsm.links import link_environment, link_hosts
from models import utcnow

if TYPE_CHECKING:
    from transitions import EventData

    from fsm.container import LiveContainer

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20

Step = Callable[["EventData"], None]


def _container(event: EventData) -> LiveContainer:
    return cast("LiveContainer", event.model)


# -- start ----------------------------------------------------------------------------------


def begin_start(event: EventData) -> None:
    container = _container(event)
    container.set(error="", exit_code=0, pid=None, finished_at=None)
    if not event.kwargs.get("restarting"):
        # a user's start ends the effect of their earlier stop on restart policies
        container.set(manually_stopped=False)


def mount_rootfs(event: EventData) -> None:
    container = _container(event)
    with host_errors():
        container.rootfs = container.orc.storage.get(container.id)
    crash_point("start.after_mount")


def setup_network(event: EventData) -> None:
    container = _container(event)
    container.attachment = networking.setup_network(container)
    crash_point("start.after_network")


def prepare_process(event: EventData) -> None:
    """Working directory, environment, command, IPC and mounts: the bundle the runtime gets."""
    container = _container(event)
    assert container.rootfs is not None and container.attachment is not None
    config, host_config = container.config, container.host_config
    rootfs = Path(container.rootfs)
    _ensure_working_directory(rootfs, config["working_dir"])
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": container.id[:12], "HOME": "/root"}
    env.update(link_environment(container))
    env.update(config["env"])
    mounts = [*_ipc_mounts(container), *_tmpfs_mounts(host_config["tmpfs"]),
              *_bind_mounts(host_config["mounts"]), *_hosts_mount(container)]
    container.bundle = BundleSpec(
        container_id=container.id,
        rootfs=str(rootfs),
        args=tuple(config["cmd"]),
        env=tuple(f"{k}={v}" for k, v in env.items()),
        cwd=config["working_dir"],
        hostname=container.id[:12],
        netns_path=container.attachment.netns_path,
        ipc=_ipc_namespace(container),
        mounts=tuple(mounts),
        cgroups_path=f"/berth/{container.id}",
    )


def start_process(event: EventData) -> None:
    container = _container(event)
    assert container.bundle is not None
    orc = container.orc
    with host_errors():
        pid = orc.runtime.start(container.bundle, container.paths,
                                on_exit=orc.exit_command(container.id), on_exit_env=orc.exit_env())
    crash_point("start.after_process")
    container.set(pid=pid, started_at=utcnow(), has_been_started_before=True)
    container.emit("start")


def _ensure_working_directory(rootfs: Path, working_dir: str) -> None:
    if not working_dir.strip("/"):
        return  # the rootfs itself, which the storage driver made (and resolving it is costly)
    target = rootfs / working_dir.lstrip("/")
    # a symlink in the image must not lead the mkdir out of the rootfs
    resolved = target.resolve()
    if rootfs.resolve() not in (resolved, *resolved.parents):
        raise BerthError(f"working_dir {working_dir!r} leads outside the container's rootfs")
    try:
        target.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as error:
        raise BerthError(f"cannot create working_dir {working_dir!r}: {error.strerror}") from error


def _ipc_namespace(container: LiveContainer) -> str:
    mode = container.host_config["ipc_mode"]
    if mode.startswith("container:"):
        target = container.orc.get(mode.removeprefix("container:"))
        if target.state != "running" or target.pid is None:
            raise BerthError(f"ipc_mode {mode!r}: container {target.name} is not running")
        if target.host_config["ipc_mode"] == "host":
            return "host"
        return f"/proc/{target.pid}/ns/ipc"
    return str(mode)


def _ipc_mounts(container: LiveContainer) -> list[Mount]:
    """The seed's setupIpcDirs/IpcMounts: a private IPC namespace gets its own /dev/shm, a
    tmpfs on the host in the container's directory; a joiner binds the owner's."""
    mode = container.host_config["ipc_mode"]
    if mode == "host":
        return [Mount("/dev/shm", "bind", "/dev/shm", ("rbind", "rw"))]
    if mode.startswith("container:"):
        target = container.orc.get(mode.removeprefix("container:"))
        if target.host_config["ipc_mode"] == "host":
            return [Mount("/dev/shm", "bind", "/dev/shm", ("rbind", "rw"))]
        return [Mount("/dev/shm", "bind", str(container.orc.paths(target.id).shm),
                      ("rbind", "rw"))]
    shm = container.paths.shm
    size = container.host_config.get("shm_size") or DEFAULT_SHM_SIZE
    with host_errors():
        mount_shm(shm, size)
    crash_point("start.after_shm")
    return [Mount("/dev/shm", "bind", str(shm), ("rbind", "rw"))]


def _has_own_shm(ipc_mode: str) -> bool:
    """Whether the container mounts a /dev/shm of its own: the host's IPC namespace has the
    host's, and a joiner binds its owner's."""
    return not (ipc_mode == "host" or ipc_mode.startswith("container:"))


def _tmpfs_mounts(tmpfs: dict[str, str]) -> list[Mount]:
    return [
        Mount(target, "tmpfs", "tmpfs", ("nosuid", "nodev", *filter(None, options.split(","))))
        for target, options in tmpfs.items()
    ]


def _bind_mounts(mounts: list[dict[str, Any]]) -> list[Mount]:
    return [
        Mount(m["target"], "bind", m["source"], ("rbind", "ro" if m["read_only"] else "rw"))
        for m in mounts
    ]


def _hosts_mount(container: LiveContainer) -> list[Mount]:
    assert container.attachment is not None
    if container.attachment.netns_path is None:
        return []
    hosts = container.paths.root / "hosts"
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if container.attachment.ip:
        lines.append(f"{container.attachment.ip}\t{container.id[:12]} {container.name}")
    lines.extend(container.attachment.hosts)
    lines.extend(link_hosts(container))
    hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    hosts.write_text("\n".join(lines) + "\n")
    return [Mount("/etc/hosts", "bind", str(hosts), ("rbind", "rw"))]


# -- undo: the error edge, exit, recovery ---------------------------------------------------


def _undo_step(step: Callable[[LiveContainer], None]) -> Step:
    """An undo never stops the error edge: what it cannot do is recorded in ``error``."""

    @wraps(step)
    def run(event: EventData) -> None:
        container = _container(event)
        try:
            step(container)
        except (BerthError, HostError, OSError) as error:
            container.undo_errors.append(f"{step.__name__}: {error}")

    return run


@_undo_step
def stop_process(container: LiveContainer) -> None:
    """Kill and delete the runtime's container, and its bundle (the logs stay)."""
    with host_errors():
        container.orc.runtime.delete(container.id)
    shutil.rmtree(container.paths.bundle, ignore_errors=True)
    crash_point("undo.after_stop_process")


@_undo_step
def release_network(container: LiveContainer) -> None:
    networking.release_network(container)
    crash_point("undo.after_release_network")


@_undo_step
def release_ipc(container: LiveContainer) -> None:
    if not _has_own_shm(container.host_config["ipc_mode"]):
        return
    with host_errors():
        unmount_shm(container.paths.shm)


@_undo_step
def put_rootfs(container: LiveContainer) -> None:
    with host_errors():
        container.orc.storage.put(container.id)
    crash_point("undo.after_put_rootfs")


def record_exit(event: EventData) -> None:
    container = _container(event)
    exit_code = int(event.kwargs.get("exit_code", 128))
    container.set(exit_code=exit_code, finished_at=utcnow(), pid=None,
                  error="; ".join(container.undo_errors))
    container.emit("die", exitCode=exit_code)
    if container.state == "stopping":
        container.emit("stop")


def record_failure(event: EventData) -> None:
    """The seed's deferred error path: SetError, exit code 128 when still 0, then ``die``."""
    container = _container(event)
    error = "; ".join([str(event.kwargs.get("error", "failed")), *container.undo_errors])
    exit_code = container.exit_code or 128
    container.set(error=error, exit_code=exit_code, finished_at=utcnow(), pid=None)
    container.emit("die", exitCode=exit_code, error=error)


# -- stop -----------------------------------------------------------------------------------


def record_stop_request(event: EventData) -> None:
    # ``unless-stopped`` must not bring back a container its user stopped
    container = _container(event)
    container.set(manually_stopped=True)
    container.emit("kill", signal="SIGTERM")


# -- remove ---------------------------------------------------------------------------------


def remove_layer(event: EventData) -> None:
    container = _container(event)
    with host_errors():
        container.orc.storage.remove(container.id)
    crash_point("remove.after_remove_layer")
    shutil.rmtree(container.paths.root, ignore_errors=True)
    container.emit("destroy")
