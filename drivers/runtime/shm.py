"""A container's ``/dev/shm``: a tmpfs mounted on the host in the container's directory and
bound into the container, as Docker's setupIpcDirs does, so that a container joining its IPC
namespace (``ipc_mode="container:<ref>"``) can bind the very same one."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.commands import run
from drivers.errors import HostError


def is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == target for line in mountinfo)


def mount_shm(path: Path, size: int) -> None:
    """Mount the tmpfs at ``path`` (once: an existing mount is kept)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if is_mounted(path):
        return
    run(["mount", "-t", "tmpfs", "-o", f"mode=1777,nosuid,nodev,noexec,size={size}", "shm",
         str(path)], what=f"cannot mount the shm tmpfs at {path}")


def unmount_shm(path: Path) -> None:
    """Unmount and remove it; one that is not mounted is already released."""
    while is_mounted(path):
        try:
            run(["umount", str(path)], what=f"cannot unmount {path}")
        except HostError:
            if is_mounted(path):
                raise
    if path.is_dir():
        os.rmdir(path)
