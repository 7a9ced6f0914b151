"""Mount and unmount filesystems, and ask the kernel what is mounted where (every driver uses
these: devicemapper for thin devices, the runtime for a container's /dev/shm).

A filesystem on a device is mounted by ``mount(8)``, which knows each type's options; a tmpfs and
every unmount are single system calls, ``mount(2)`` and ``umount2(2)`` through ``ctypes``: they
are on the path of every container start and exit, where a ``mount``/``umount`` process cost
15-30 ms each on a loaded host (docs/performance.md, hot spot I) and the call itself microseconds.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.commands import QUICK, run
from drivers.errors import DeviceBusy, HostError

#: mount(2) flags for the generic options a tmpfs takes (linux/mount.h); any other option is
#: the filesystem's own and goes in the data string, as mount(8) does
MOUNT_FLAGS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024}


def mount(device: str, target: str, fstype: str, options: Sequence[str] = ()) -> None:
    """Mount ``device`` on ``target``."""
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", ",".join(options)]
    run([*argv, device, target], timeout=QUICK)


def mount_tmpfs(target: str, options: Sequence[str] = (), source: str = "tmpfs") -> None:
    """Mount a tmpfs on ``target`` with ``mount(2)``; ``options`` as ``mount -o`` takes them."""
    flags = 0
    data = []
    for option in options:
        if option in MOUNT_FLAGS:
            flags |= MOUNT_FLAGS[option]
        else:
            data.append(option)
    if _libc().mount(source.encode(), target.encode(), b"tmpfs", flags,
                     ",".join(data).encode()) != 0:
        raise _syscall_error(f"cannot mount a tmpfs on {target}")


def mount_data(source: str, target: str, fstype: str, data: str, flags: int = 0) -> None:
    """``mount(2)`` with the filesystem's own options in ``data`` (an overlay's layers), which
    the kernel takes up to a page long."""
    if _libc().mount(source.encode(), target.encode(), fstype.encode(), flags,
                     data.encode()) != 0:
        raise _syscall_error(f"cannot mount {fstype} on {target}")


def unmount(target: str, *, attempts: int = 5, delay: float = 0.1) -> None:
    """Unmount ``target``; nothing to do when it is not mounted.

    Raises :class:`DeviceBusy` when a process still uses the filesystem after a few short
    retries (a process that exits is gone in milliseconds; one that keeps a file open is not).
    """
    for attempt in range(attempts):
        if not is_mounted(target):
            return
        if _libc().umount2(target.encode(), 0) == 0:
            return
        error = _syscall_error(f"cannot unmount {target}")
        if error.errno == errno.EINVAL and not is_mounted(target):
            return  # unmounted meanwhile by someone else
        if error.errno != errno.EBUSY:
            raise error
        if attempt == attempts - 1:
            raise DeviceBusy(f"{target} is in use by a process; stop it (see fuser -vm {target})",
                             stderr=error.stderr)
        time.sleep(delay)


def is_mounted(target: str) -> bool:
    """Whether something is mounted exactly on ``target``."""
    return os.path.realpath(target) in mount_points()


def mount_points() -> list[str]:
    """Every mount point this process sees, from /proc/self/mountinfo."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(unescape(fields[4]))
    return points


def mounted_under(directory: str) -> list[str]:
    """Mount points at or below ``directory``."""
    root = os.path.realpath(directory)
    return [p for p in mount_points() if p == root or p.startswith(root + os.sep)]


def unescape(field: str) -> str:
    """A path as mountinfo shows it, its escapes undone."""
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


@functools.cache
def _libc() -> Any:
    # imported on first use: ``berth ps`` never mounts anything
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    text = ctypes.c_char_p
    libc.mount.argtypes = [text, text, text, ctypes.c_ulong, text]
    libc.umount2.argtypes = [text, ctypes.c_int]
    return libc


def _syscall_error(message: str) -> HostError:
    """A :class:`HostError` for the system call that just failed, from its errno."""
    import ctypes

    code = ctypes.get_errno()
    return HostError(message, stderr=os.strerror(code), errno=code)


def remove_tree(directory: Path, *, scan_mounts: bool = True) -> None:
    """Unmount whatever is mounted under ``directory`` (deepest first), then delete it: a tree
    deleted under a live mount leaves the mount behind, and may delete into it. A caller that
    has unmounted what it knows of may skip reading the mount table (``scan_mounts=False``)."""
    if scan_mounts:
        for target in sorted(mounted_under(str(directory)), key=len, reverse=True):
            unmount(target)
    shutil.rmtree(directory, ignore_errors=True)
