"""The driver's ``status()``: a flat table a person reads at a glance, as ``docker info`` shows."""

from __future__ import annotations

from drivers.storage.devicemapper import dmsetup
from drivers.storage.devicemapper.metadata import PoolRecord

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: float) -> str:
    """Decimal units with four significant digits, as Docker prints them: ``65.54kB``."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def pool_status_rows(
    pool: PoolRecord,
    status: dmsetup.ThinPoolStatus,
    *,
    base_size: int,
    filesystem: str,
    min_free_space: int,
    loop_devices: tuple[str, str],
    loop_filesystem_free: int | None,
    device_count: int,
    active_count: int,
) -> list[tuple[str, str]]:
    block = pool.block_size_sectors * dmsetup.SECTOR_SIZE
    data_used = status.used_data_blocks * block
    data_total = status.total_data_blocks * block
    meta_used = status.used_metadata_blocks * dmsetup.METADATA_BLOCK_SIZE
    meta_total = status.total_metadata_blocks * dmsetup.METADATA_BLOCK_SIZE
    # A sparse loop file can only grow as far as its filesystem lets it: what is free there
    # bounds what is free in the pool.
    data_available = _bounded(data_total - data_used, loop_filesystem_free)
    meta_available = _bounded(meta_total - meta_used, loop_filesystem_free)
    rows = [
        ("Pool Name", pool.name),
        ("Pool Blocksize", human_size(block)),
        ("Base Device Size", human_size(base_size)),
        ("Backing Filesystem", filesystem),
    ]
    if pool.is_loopback:
        rows += [
            ("Data file", loop_devices[0]),
            ("Metadata file", loop_devices[1]),
            ("Data loop file", pool.data_file or ""),
            ("Metadata loop file", pool.metadata_file or ""),
            (
                "Loop Filesystem Available",
                "" if loop_filesystem_free is None else human_size(loop_filesystem_free),
            ),
        ]
    else:
        rows += [("Data file", ""), ("Metadata file", "")]
    rows += [
        ("Data Space Used", human_size(data_used)),
        ("Data Space Total", human_size(data_total)),
        ("Data Space Available", human_size(data_available)),
        ("Metadata Space Used", human_size(meta_used)),
        ("Metadata Space Total", human_size(meta_total)),
        ("Metadata Space Available", human_size(meta_available)),
        ("Thin Pool Minimum Free Space", human_size(data_total * min_free_space // 100)),
        ("Pool Transaction Id", str(status.transaction_id)),
        ("Device count", str(device_count)),
        ("Active devices", str(active_count)),
    ]
    return rows


def _bounded(available: int, loop_filesystem_free: int | None) -> int:
    return available if loop_filesystem_free is None else min(available, loop_filesystem_free)
