"""A thin wrapper over ``losetup``: back a block device with a (sparse) file.

Loop-lvm puts the thin pool's data and metadata on two files; each needs a loop device.
"""

from __future__ import annotations

import os

from drivers.commands import QUICK, run
from drivers.errors import HostError

_SYS_BLOCK = "/sys/block"


def attach(backing_file: str) -> str:
    """Attach ``backing_file`` to the first free loop device and return its path (/dev/loopN)."""
    device = run(["losetup", "--find", "--show", backing_file], timeout=QUICK).strip()
    if not device.startswith("/dev/"):
        raise HostError(
            f"losetup printed {device!r} instead of a loop device for {backing_file}",
            command=["losetup", "--find", "--show", backing_file],
        )
    return device


def find(backing_file: str) -> list[str]:
    """Loop devices whose backing file is ``backing_file``.

    Read from sysfs (``/sys/block/loopN/loop/backing_file``) rather than by running
    ``losetup --associated``: the answer is the same and costs no process, which matters because
    every pool start and shutdown asks.
    """
    target = os.path.realpath(backing_file)
    found = []
    for entry in sorted(os.listdir(_SYS_BLOCK)) if os.path.isdir(_SYS_BLOCK) else []:
        try:
            with open(
                os.path.join(_SYS_BLOCK, entry, "loop", "backing_file"), encoding="utf-8"
            ) as f:
                path = f.read().rstrip("\n")
        except OSError:
            continue  # not a loop device, or not attached
        if path.removesuffix(" (deleted)") == target:
            found.append(f"/dev/{entry}")
    return found


def attached_to(backing_file: str) -> str:
    """The loop device backing ``backing_file``, attaching one if there is none."""
    devices = find(backing_file)
    return devices[0] if devices else attach(backing_file)


def detach(device: str) -> None:
    """Detach one loop device."""
    run(["losetup", "--detach", device], timeout=QUICK)


def detach_all(backing_file: str) -> None:
    """Detach every loop device backed by ``backing_file``."""
    for device in find(backing_file):
        detach(device)
