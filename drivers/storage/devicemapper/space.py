"""Whether a thin pool has the room ``min_free_space`` asks for, before anything is created in it.

The pool's own counters are not the whole story for loop-lvm: its data and metadata files are
sparse, so the blocks the pool counts as free are only promised until the filesystem holding the
files hands them out. When that filesystem fills first, the loop device fails the pool's writes
and the kernel turns the pool read-only. The room of a loop-backed pool is therefore checked in
the pool and on that filesystem, each against what ``min_free_space`` asks of it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.errors import HostError, NotEnoughSpace
from drivers.storage.devicemapper import dmsetup
from drivers.storage.devicemapper.status import human_size


@dataclass(frozen=True)
class Room:
    """Bytes free in one place a pool's blocks come from, against what ``min_free_space`` wants
    kept free there: a percentage of ``total``."""

    place: str
    free: int
    total: int
    wanted: int
    remedy: str

    @property
    def is_short(self) -> bool:
        return self.free < self.wanted


def wanted_free(total: int, min_free_space: int) -> int:
    """The bytes of ``total`` that ``min_free_space`` (a percentage) asks to keep free.

    Rounded up, so that ``free < wanted_free(...)`` is exactly ``free * 100 < total * percent``.
    """
    return -(-total * min_free_space // 100)


def pool_rooms(
    name: str, status: dmsetup.ThinPoolStatus, block_size_sectors: int, min_free_space: int
) -> list[Room]:
    """The pool's data and metadata space, from its own counters."""
    block = block_size_sectors * dmsetup.SECTOR_SIZE
    rooms = []
    for what, used, total, size in (
        ("data", status.used_data_blocks, status.total_data_blocks, block),
        (
            "metadata",
            status.used_metadata_blocks,
            status.total_metadata_blocks,
            dmsetup.METADATA_BLOCK_SIZE,
        ),
    ):
        rooms.append(
            Room(
                place=f"the {what} space of thin pool {name}",
                free=(total - used) * size,
                total=total * size,
                wanted=wanted_free(total * size, min_free_space),
                remedy="remove unused layers or grow the pool",
            )
        )
    return rooms


def loop_filesystem_room(loop_files: Mapping[str, int], min_free_space: int) -> Room | None:
    """The filesystem that a loop-lvm pool's sparse files grow into.

    ``loop_files`` maps each file to the size it is created with, used while it does not exist
    yet; an existing file counts with its own size. Berth keeps both files in one directory, whose
    filesystem this reads. ``None`` when no file is a regular file (a block device in their
    place has no filesystem to fill).
    """
    sizes = []
    for path, planned_size in loop_files.items():
        try:
            info = os.stat(path)
        except FileNotFoundError:
            sizes.append(planned_size)
            continue
        except OSError as exc:
            raise HostError(f"cannot read {path}: {exc.strerror}", errno=exc.errno) from exc
        if stat.S_ISREG(info.st_mode):
            sizes.append(info.st_size)
    if not sizes:
        return None
    directory = os.path.dirname(next(iter(loop_files)))
    free = filesystem_free(directory)
    return Room(
        place=f"the filesystem holding the pool's sparse loop files ({directory})",
        free=free,
        total=sum(sizes),
        wanted=sum(wanted_free(size, min_free_space) for size in sizes),
        remedy="free space on that filesystem, or lower min_free_space",
    )


def filesystem_free(directory: str) -> int:
    """Bytes free for files in ``directory``'s filesystem.

    Blocks reserved for root are left out: the loop driver may be allowed them, but a pool that
    takes them leaves the host's own root-run services nothing to write with.
    """
    try:
        fs = os.statvfs(directory)
    except OSError as exc:
        raise HostError(
            f"cannot read the free space of {directory}: {exc.strerror}", errno=exc.errno
        ) from exc
    return fs.f_bavail * fs.f_frsize


def check_rooms(action: str, rooms: Iterable[Room | None], min_free_space: int) -> None:
    """Raise :class:`NotEnoughSpace` for the first room short of what it wants, or return.

    ``action`` is what is refused, for the message: ``"cannot create layer 'abc'"``.
    """
    for room in rooms:
        if room is not None and room.is_short:
            raise NotEnoughSpace(
                f"{action}: {room.place} has {human_size(room.free)} free, less than the "
                f"{human_size(room.wanted)} that min_free_space={min_free_space}% of "
                f"{human_size(room.total)} keeps free; {room.remedy}",
                place=room.place,
                free=room.free,
                wanted=room.wanted,
                min_free_space=min_free_space,
            )
