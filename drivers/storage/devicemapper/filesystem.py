"""The filesystem on a thin device: make it, identify it, grow it (ext4 only, for now)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from drivers.commands import QUICK, SLOW, run
from drivers.errors import HostError

# nodiscard: a fresh thin device is already all zeros, discarding it only costs time.
# lazy_*_init=0: write the inode tables and journal now rather than from a kernel thread after the
# first mount, which would allocate pool blocks behind our back in every snapshot.
MKFS_EXT4_OPTIONS = "nodiscard,lazy_itable_init=0,lazy_journal_init=0"


def make_filesystem(device: str, fstype: str, extra_args: Sequence[str] = ()) -> str:
    """Create an empty filesystem on ``device`` and return its UUID.

    The UUID is chosen here and given to mkfs, which saves asking blkid afterwards.
    """
    if fstype != "ext4":
        raise HostError(f"filesystem {fstype!r} is not supported; use ext4")
    fs_uuid = str(uuid.uuid4())
    argv = ["mkfs.ext4", "-q", "-U", fs_uuid, "-E", MKFS_EXT4_OPTIONS, *extra_args, device]
    run(argv, timeout=SLOW)
    return fs_uuid


def filesystem_uuid(device: str) -> str:
    """The UUID of the filesystem on ``device`` (blkid, bypassing its cache)."""
    argv = ["blkid", "-c", "/dev/null", "-o", "value", "-s", "UUID", device]
    uuid = run(argv, timeout=QUICK, ok_codes=(0, 2)).strip()
    if not uuid:
        raise HostError(f"no filesystem found on {device}", command=argv)
    return uuid


def grow_filesystem(device: str) -> None:
    """Grow the (unmounted) filesystem on ``device`` to the device's size.

    resize2fs refuses a filesystem mounted since its last check, which a snapshot of a used layer
    always is; e2fsck first (exit 1 means it fixed something, such as replaying the journal).
    """
    run(["e2fsck", "-f", "-y", device], timeout=SLOW, ok_codes=(0, 1))
    run(["resize2fs", device], timeout=SLOW)
