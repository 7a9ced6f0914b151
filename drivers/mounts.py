"""Mount and unmount filesystems, and ask the kernel what is mounted where (every driver uses
these: devicemapper for thin devices, the runtime for a container's /dev/shm)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence

from drivers.commands import QUICK, run
from drivers.errors import DeviceBusy, HostError


def mount(device: str, target: str, fstype: str, options: Sequence[str] = ()) -> None:
    """Mount ``device`` on ``target``."""
    argv = ["mount", "-t", fstype]
    if options:
        argv += ["-o", ",".join(options)]
    run([*argv, device, target], timeout=QUICK)


def unmount(target: str, *, attempts: int = 5, delay: float = 0.1) -> None:
    """Unmount ``target``; nothing to do when it is not mounted.

    Raises :class:`DeviceBusy` when a process still uses the filesystem after a few short
    retries (a process that exits is gone in milliseconds; one that keeps a file open is not).
    """
    for attempt in range(attempts):
        if not is_mounted(target):
            return
        try:
            run(["umount", target], timeout=QUICK, map_error=_busy_error)
            return
        except DeviceBusy:
            if attempt == attempts - 1:
                raise
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
                points.append(_unescape(fields[4]))
    return points


def mounted_under(directory: str) -> list[str]:
    """Mount points at or below ``directory``."""
    root = os.path.realpath(directory)
    return [p for p in mount_points() if p == root or p.startswith(root + os.sep)]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def _busy_error(argv: Sequence[str], stderr: str, exit_code: int) -> HostError | None:
    if "busy" in stderr:
        return DeviceBusy(
            f"{argv[-1]} is in use by a process; stop it (see fuser -vm {argv[-1]})",
            command=argv,
            stderr=stderr,
            errno=errno.EBUSY,
        )
    return None
