"""The steps of ``start``, as the seed's ``containerStart`` takes them: mount the rootfs, set up
the network, prepare the process (working directory, environment with links, command, IPC dirs
and mounts), then start it and wait until it really runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transitions import EventData

from drivers.crashpoints import crash_point
from drivers.runtime.bundle import BundleSpec, Mount
from drivers.runtime.shm import mount_shm
from fsm.container import LiveContainer
from fsm.errors import BerthError, host_errors
from fsm.steps import network
from fsm.steps.host import Host, container_of, host_of
from fsm.steps.links import link_environment, link_hosts
from fsm.steps.phase import phase
from models import utcnow

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 << 20


def begin_start(event: EventData) -> None:
    """A new run: its number names every file of its monitor and its exit."""
    container = container_of(event)
    container.set(error="", exit_code=0, pid=None, finished_at=None, run=container.run + 1)
    if not event.kwargs.get("restarting"):
        # a user's start ends the effect of their earlier stop on restart policies
        container.set(manually_stopped=False)


@phase("mounting the rootfs")
def mount_rootfs(event: EventData) -> None:
    container, host = container_of(event), host_of(event)
    with host_errors():
        container.rootfs = host.storage.get(container.id)
    crash_point("start.after_mount")


@phase("setting up the network")
def setup_network(event: EventData) -> None:
    container = container_of(event)
    container.attachment = network.setup_network(container, host_of(event))
    crash_point("start.after_network")


@phase("preparing the process (working directory, environment, mounts)")
def prepare_process(event: EventData) -> None:
    """Working directory, environment, command, IPC and mounts: the bundle the runtime gets."""
    container, host = container_of(event), host_of(event)
    assert container.rootfs is not None and container.attachment is not None
    config, host_config = container.config, container.host_config
    rootfs = Path(container.rootfs)
    ensure_working_directory(rootfs, config["working_dir"])
    user = config.get("user") or {}
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": container.id[:12],
           "HOME": user.get("home") or "/root"}
    env.update(link_environment(container, host))
    env.update(config["env"])
    mounts = [*_ipc_mounts(container, host), *_tmpfs_mounts(host_config["tmpfs"]),
              *_bind_mounts(host_config["mounts"]), *_hosts_mount(container, host)]
    container.bundle = BundleSpec(
        container_id=container.id,
        rootfs=str(rootfs),
        args=tuple(config["cmd"]),
        env=tuple(f"{k}={v}" for k, v in env.items()),
        cwd=config["working_dir"],
        hostname=container.id[:12],
        netns_path=container.attachment.netns_path,
        ipc=_ipc_namespace(container, host),
        mounts=tuple(mounts),
        cgroups_path=f"/berth/{container.id}",
        uid=user.get("uid", 0),
        gid=user.get("gid", 0),
        additional_gids=tuple(user.get("additional_gids", ())),
    )


@phase("starting the process")
def start_process(event: EventData) -> None:
    container, host = container_of(event), host_of(event)
    assert container.bundle is not None
    with host_errors():
        pid = host.runtime.start(container.bundle, host.run_paths(container),
                                 on_exit=host.exit_command(container.id, container.run),
                                 on_exit_env=host.exit_env(),
                                 log_max_size=container.host_config.get("log_max_size"))
    crash_point("start.after_process")
    container.set(pid=pid, started_at=utcnow(), has_been_started_before=True)
    container.emit("start")


def ensure_working_directory(rootfs: Path, working_dir: str) -> None:
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


def _ipc_target(container: LiveContainer, host: Host) -> LiveContainer:
    target = host.db.resolve(container.host_config["ipc_mode"].removeprefix("container:"))
    if target.state != "running" or target.pid is None:
        raise BerthError(f"ipc_mode {container.host_config['ipc_mode']!r}: container "
                         f"{target.name} is not running")
    return target


def _ipc_namespace(container: LiveContainer, host: Host) -> str:
    mode = str(container.host_config["ipc_mode"])
    if mode.startswith("container:"):
        target = _ipc_target(container, host)
        if target.host_config["ipc_mode"] == "host":
            return "host"
        return f"/proc/{target.pid}/ns/ipc"
    return mode


def _ipc_mounts(container: LiveContainer, host: Host) -> list[Mount]:
    """The seed's setupIpcDirs/IpcMounts: a private IPC namespace gets its own /dev/shm, a
    tmpfs on the host in the container's directory; a joiner binds the owner's."""
    mode = container.host_config["ipc_mode"]
    if mode == "host":
        return [Mount("/dev/shm", "bind", "/dev/shm", ("rbind", "rw"))]
    if mode.startswith("container:"):
        target = _ipc_target(container, host)
        if target.host_config["ipc_mode"] == "host":
            return [Mount("/dev/shm", "bind", "/dev/shm", ("rbind", "rw"))]
        return [Mount("/dev/shm", "bind", str(host.paths(target.id).shm), ("rbind", "rw"))]
    shm = host.paths(container.id).shm
    size = container.host_config.get("shm_size") or DEFAULT_SHM_SIZE
    with host_errors():
        mount_shm(shm, size)
    crash_point("start.after_shm")
    return [Mount("/dev/shm", "bind", str(shm), ("rbind", "rw"))]


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


def _hosts_mount(container: LiveContainer, host: Host) -> list[Mount]:
    assert container.attachment is not None
    if container.attachment.netns_path is None:
        return []
    hosts = host.paths(container.id).root / "hosts"
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if container.attachment.ip:
        lines.append(f"{container.attachment.ip}\t{container.id[:12]} {container.name}")
    lines.extend(container.attachment.hosts)
    lines.extend(link_hosts(container, host))
    hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    hosts.write_text("\n".join(lines) + "\n")
    return [Mount("/etc/hosts", "bind", str(hosts), ("rbind", "rw"))]
