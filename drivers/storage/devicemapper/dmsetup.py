"""A thin, typed wrapper over ``dmsetup``: one function per command or pool message.

Functions take device names (``berth-1a2b3c4d-pool``) and return small dataclasses. Failures are
mapped from dmsetup's text to :class:`DeviceBusy` (EBUSY), :class:`DeviceExists` (EEXIST) and
:class:`NoSuchDevice` (ENXIO, ENODATA, "does not exist"), so callers branch on meaning.

Kernel reference: Documentation/admin-guide/device-mapper/thin-provisioning.rst.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.commands import QUICK, run
from drivers.errors import DeviceBusy, DeviceExists, HostError, NoSuchDevice

SECTOR_SIZE = 512
#: thin-pool metadata is always kept in 4 KiB blocks, whatever the data block size.
METADATA_BLOCK_SIZE = 4096
#: Thin device ids are 24 bits wide in the pool's metadata.
MAX_DEVICE_ID = 0xFFFFFF
MAPPER_DIR = "/dev/mapper"

# The pool raises a "low water mark" event when fewer free data blocks remain; nothing in berth
# listens for it, so any value works; containerd and Docker use the same one.
LOW_WATER_MARK_BLOCKS = 32768


@dataclass(frozen=True)
class DeviceInfo:
    """One row of ``dmsetup info --columns``."""

    name: str
    block_device: str  # dm-3
    major: int
    minor: int
    open_count: int
    target_count: int
    event_number: int
    suspended: bool
    read_only: bool
    table_live: bool
    table_inactive: bool


@dataclass(frozen=True)
class ThinPoolStatus:
    """The thin-pool target's status line, in its own units (blocks)."""

    transaction_id: int
    used_metadata_blocks: int
    total_metadata_blocks: int
    used_data_blocks: int
    total_data_blocks: int
    mode: str  # rw, ro or out_of_data_space
    needs_check: bool


@dataclass(frozen=True)
class ThinStatus:
    """A thin target's status line: how much of the virtual device has been written."""

    mapped_sectors: int
    highest_mapped_sector: int | None


# --- tables --------------------------------------------------------------------------------------


def thin_pool_table(
    metadata_device: str, data_device: str, data_sectors: int, block_size_sectors: int
) -> str:
    """The table line of a thin pool.

    Format: ``<start> <length> thin-pool <metadata dev> <data dev> <data block size (sectors)>
    <low water mark (blocks)> <#feature args> <feature args>...``. ``skip_block_zeroing`` because
    every device carries a filesystem that never reads a block it has not written;
    ``error_if_no_space`` so that a full pool fails writes at once instead of queueing them
    (the kernel would hold every writer for 60 s, hanging containers and ``umount``).
    """
    length = data_sectors - data_sectors % block_size_sectors
    features = ("skip_block_zeroing", "error_if_no_space")
    return (
        f"0 {length} thin-pool {metadata_device} {data_device} {block_size_sectors} "
        f"{LOW_WATER_MARK_BLOCKS} {len(features)} {' '.join(features)}"
    )


def thin_table(pool_device: str, device_id: int, size_bytes: int) -> str:
    """The table line of a thin device: ``<start> <length> thin <pool dev> <dev id>``."""
    return f"0 {size_bytes // SECTOR_SIZE} thin {pool_device} {device_id}"


def device_path(name: str) -> str:
    """``/dev/mapper/<name>``: where dmsetup (or udev) puts the node."""
    return name if name.startswith("/") else os.path.join(MAPPER_DIR, name)


# --- device commands -----------------------------------------------------------------------------


def create(name: str, table: str) -> None:
    """``dmsetup create NAME --table TABLE``; :class:`DeviceExists` when the name is taken."""
    try:
        _dmsetup("create", name, "--table", table)
    except DeviceBusy as exc:
        # The kernel answers EBUSY to a name that is already in use.
        if info(name) is not None:
            raise DeviceExists(
                f"device-mapper device {name} already exists",
                command=exc.command,
                stderr=exc.stderr,
            ) from None
        raise


def remove(name: str, *, attempts: int = 20, delay: float = 0.1) -> None:
    """``dmsetup remove NAME``, retried while the device is busy.

    A device is briefly busy after its last ``umount`` while the kernel drops its references (or
    while blkid/udev peeks at it). Raises :class:`DeviceBusy` when it stays busy.
    """
    for attempt in range(attempts):
        try:
            _dmsetup("remove", name)
            return
        except DeviceBusy:
            if attempt == attempts - 1:
                raise
            time.sleep(delay)


def suspend(name: str) -> None:
    """``dmsetup suspend NAME``: flush and block I/O (and freeze a mounted filesystem)."""
    _dmsetup("suspend", name)


def resume(name: str) -> None:
    """``dmsetup resume NAME``: let I/O through again."""
    _dmsetup("resume", name)


def table(name: str) -> str:
    """The live table of a device."""
    return _dmsetup("table", name).strip()


def info(name: str) -> DeviceInfo | None:
    """One device's info, or ``None`` when no device has that name."""
    try:
        devices = _info(name)
    except NoSuchDevice:
        return None
    return devices[0] if devices else None


def ls() -> list[DeviceInfo]:
    """Every device-mapper device on the host."""
    return _info()


def status(name: str) -> str:
    """The raw status line (``<start> <length> <target> <params>...``) of a one-segment device."""
    return _dmsetup("status", name).strip()


def pool_status(name: str) -> ThinPoolStatus:
    """The parsed status of a thin pool; :class:`HostError` when it has failed."""
    return parse_pool_status(status(name), name)


def thin_status(name: str) -> ThinStatus:
    """The parsed status of an active thin device."""
    return parse_thin_status(status(name), name)


def targets() -> list[str]:
    """Names of the targets the kernel offers (``thin-pool``, ``thin``, ``linear``...)."""
    return [line.split()[0] for line in _dmsetup("targets").splitlines() if line.strip()]


# --- pool messages -------------------------------------------------------------------------------
# Messages change the pool's metadata. The pool commits them with the next transaction id
# (``set_transaction_id``), which is how berth tells, after a crash, whether it got that far.


def create_thin(pool: str, device_id: int) -> None:
    """Add an empty thin device ``device_id`` to the pool; :class:`DeviceExists` if taken."""
    _message(pool, f"create_thin {device_id}")


def create_snap(pool: str, device_id: int, origin_id: int) -> None:
    """Add thin device ``device_id`` as a snapshot of ``origin_id``.

    The caller must suspend the origin first when it is active, or writes in flight may be
    half in the snapshot. :class:`NoSuchDevice` when the origin id is unknown to the pool.
    """
    _message(pool, f"create_snap {device_id} {origin_id}")


def delete(pool: str, device_id: int) -> None:
    """Delete thin device ``device_id``; :class:`NoSuchDevice` (ENODATA) when it is not there."""
    _message(pool, f"delete {device_id}")


def set_transaction_id(pool: str, current: int, new: int) -> None:
    """Move the pool's transaction id from ``current`` to ``new`` (EINVAL if not ``current``)."""
    _message(pool, f"set_transaction_id {current} {new}")


# --- parsing -------------------------------------------------------------------------------------


def parse_pool_status(line: str, name: str = "pool") -> ThinPoolStatus:
    """Parse a thin-pool status line.

    Format: ``<start> <length> thin-pool <transaction id> <used>/<total metadata blocks>
    <used>/<total data blocks> <held metadata root> ro|rw|out_of_data_space
    [no_]discard_passdown error|queue_if_no_space needs_check|- [metadata low watermark]``,
    or ``<start> <length> thin-pool Fail`` once the pool has failed.
    """
    fields = line.split()
    if len(fields) < 4 or fields[2] != "thin-pool":
        raise HostError(f"{name} is not a thin pool: status {line!r}")
    params = fields[3:]
    if params[0] in ("Fail", "Error"):
        raise HostError(
            f"thin pool {name} has failed (status {line!r}); check the kernel log and run "
            "thin_check on its metadata device"
        )
    try:
        used_meta, total_meta = _fraction(params[1])
        used_data, total_data = _fraction(params[2])
        return ThinPoolStatus(
            transaction_id=int(params[0]),
            used_metadata_blocks=used_meta,
            total_metadata_blocks=total_meta,
            used_data_blocks=used_data,
            total_data_blocks=total_data,
            mode=params[4],
            needs_check=len(params) > 7 and params[7] == "needs_check",
        )
    except (IndexError, ValueError):
        raise HostError(f"cannot parse the status of thin pool {name}: {line!r}") from None


def parse_thin_status(line: str, name: str = "device") -> ThinStatus:
    """Parse a thin status line: ``<start> <length> thin <mapped sectors> <highest>|-``."""
    fields = line.split()
    if len(fields) < 4 or fields[2] != "thin":
        raise HostError(f"{name} is not a thin device: status {line!r}")
    if fields[3] == "Fail":
        raise HostError(f"thin device {name} has failed (status {line!r})")
    try:
        highest = None if len(fields) < 5 or fields[4] == "-" else int(fields[4])
        return ThinStatus(mapped_sectors=int(fields[3]), highest_mapped_sector=highest)
    except ValueError:
        raise HostError(f"cannot parse the status of thin device {name}: {line!r}") from None


_INFO_COLUMNS = "name,blkdevname,attr,major,minor,open,segments,events"


def parse_info(output: str) -> list[DeviceInfo]:
    """Parse ``dmsetup info --columns --noheadings -o name,blkdevname,attr,major,minor,open,
    segments,events --separator ' '``. Names may contain spaces, so fields are split from the
    right. dmsetup prints ``No devices found`` when there are none.
    """
    devices = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line == "No devices found":
            continue
        parts = line.rsplit(" ", 7)
        if len(parts) != 8:
            raise HostError(f"cannot parse dmsetup info line {line!r}")
        name, blkdev, attr, major, minor, opened, segments, events = parts
        devices.append(
            DeviceInfo(
                name=name,
                block_device=blkdev,
                major=int(major),
                minor=int(minor),
                open_count=int(opened),
                target_count=int(segments),
                event_number=int(events),
                # attr is six characters, e.g. "L--w": (L)ive, (I)nactive table,
                # (s)uspended, (r)ead-only; see dmsetup(8).
                suspended="s" in attr,
                read_only="r" in attr,
                table_live="L" in attr,
                table_inactive="I" in attr,
            )
        )
    return devices


# Lowercased strerror text -> errno, to read the "failed: <text>" dmsetup prints.
_ERRNO_BY_TEXT = {os.strerror(code).lower(): code for code in sorted(errno.errorcode, reverse=True)}
_FAILED = re.compile(r"failed: (?P<text>[^\n]+)")
_NOT_FOUND = re.compile(r"Device does not exist|Device .* not found|No such device or address")
_CLASS_BY_ERRNO: dict[int, type[HostError]] = {
    errno.EBUSY: DeviceBusy,
    errno.EEXIST: DeviceExists,
    errno.ENODATA: NoSuchDevice,
    errno.ENXIO: NoSuchDevice,
    errno.ENOENT: NoSuchDevice,
    errno.ENODEV: NoSuchDevice,
}


def error_from_output(argv: Sequence[str], stderr: str, exit_code: int) -> HostError:
    """Map dmsetup's error text to a typed error.

    dmsetup reports a failed ioctl as ``device-mapper: <op> ioctl on <name>  failed: <strerror>``
    followed by ``Command failed.``; a missing device as ``Device does not exist.`` (info, status)
    or ``Device <name> not found`` (remove, newer versions).
    """
    code: int | None = None
    for match in _FAILED.finditer(stderr):
        code = _ERRNO_BY_TEXT.get(match.group("text").strip().rstrip(".").lower(), code)
    if code is None and _NOT_FOUND.search(stderr):
        code = errno.ENXIO
    cls = _CLASS_BY_ERRNO.get(code, HostError) if code is not None else HostError
    what = os.strerror(code) if code is not None else f"exit status {exit_code}"
    return cls(
        f"dmsetup {argv[1] if len(argv) > 1 else ''} failed: {what}",
        command=argv,
        stderr=stderr,
        errno=code,
    )


def _fraction(text: str) -> tuple[int, int]:
    used, total = text.split("/")
    return int(used), int(total)


def _dmsetup(*args: str) -> str:
    return run(["dmsetup", *args], timeout=QUICK, map_error=error_from_output)


def _info(*names: str) -> list[DeviceInfo]:
    return parse_info(
        _dmsetup(
            "info", "--columns", "--noheadings", "-o", _INFO_COLUMNS, "--separator", " ", *names
        )
    )


def _message(pool: str, text: str) -> None:
    # Sector 0: thin-pool messages ignore it, but dmsetup requires one.
    _dmsetup("message", pool, "0", text)
