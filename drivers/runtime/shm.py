"""A container's ``/dev/shm``: a tmpfs mounted on the host in the container's directory and
bound into the container, as Docker's setupIpcDirs does, so that a container joining its IPC
namespace (``ipc_mode="container:<ref>"``) can bind the very same one."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.mounts import is_mounted, mount_tmpfs, unmount


def mount_shm(path: Path, size: int) -> None:
    """Mount the tmpfs at ``path`` (once: an existing mount is kept)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_mounted(str(path)):
        mount_tmpfs(str(path), ("mode=1777", "nosuid", "nodev", "noexec", f"size={size}"),
                    source="shm")


def unmount_shm(path: Path) -> None:
    """Unmount and remove it; one that is not mounted is already released."""
    if not path.is_dir():
        return  # nothing can be mounted there (host IPC, or released before): skip mountinfo
    unmount(str(path))
    os.rmdir(path)
