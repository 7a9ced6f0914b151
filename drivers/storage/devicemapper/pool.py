"""Bring the thin pool up and down: loop-lvm (two sparse files) or an existing pool."""

from __future__ import annotations

import contextlib
import os

from drivers.errors import DeviceExists, HostError, NoSuchDevice
from drivers.storage.devicemapper import dmsetup, losetup
from drivers.storage.devicemapper.config import DevicemapperOptions
from drivers.storage.devicemapper.layout import Layout
from drivers.storage.devicemapper.metadata import PoolRecord


def new_pool_record(layout: Layout, options: DevicemapperOptions) -> PoolRecord:
    """The record of the pool a fresh data root will use."""
    if options.thin_pool_device is not None:
        return PoolRecord(
            name=os.path.basename(options.thin_pool_device),
            pool_device=options.thin_pool_device,
            data_file=None,
            metadata_file=None,
            block_size_sectors=options.block_size_sectors,
            base_size=options.base_size,
        )
    return PoolRecord(
        name=layout.loop_pool_name,
        pool_device=dmsetup.device_path(layout.loop_pool_name),
        data_file=layout.data_file,
        metadata_file=layout.metadata_file,
        block_size_sectors=options.block_size_sectors,
        base_size=options.base_size,
    )


def create_loop_files(layout: Layout, options: DevicemapperOptions) -> list[str]:
    """Create the sparse data and metadata files that do not exist yet; return those created.

    Existing files are kept as they are: they hold the pool of an earlier run.
    """
    created = []
    for path, size in (
        (layout.data_file, options.data_loop_size),
        (layout.metadata_file, options.metadata_loop_size),
    ):
        if os.path.exists(path):
            continue
        try:
            with open(path, "xb") as file:
                created.append(path)
                file.truncate(size)
        except OSError as exc:
            raise HostError(
                f"cannot create the pool file {path} ({size} bytes): {exc.strerror}",
                errno=exc.errno,
            ) from exc
    return created


def activate(pool: PoolRecord) -> bool:
    """Make sure the pool's dm device exists; return whether this call created it.

    A loop-lvm pool is (re)built from its files, as after a reboot. An existing pool is never
    created by berth: its absence is an error.
    """
    if pool.data_file is None or pool.metadata_file is None:
        if dmsetup.info(pool.name) is None:
            raise HostError(
                f"thin pool {pool.pool_device} does not exist; create it (for example "
                "with lvcreate --type thin-pool) or unset thin_pool_device"
            )
        return False
    for path in (pool.data_file, pool.metadata_file):
        if not os.path.exists(path):
            raise HostError(
                f"pool file {path} is missing; the pool {pool.name} and every layer in it are lost"
            )
    attached: list[str] = []  # loops this call attached, to detach if it goes no further
    try:
        loops = []
        for path in (pool.data_file, pool.metadata_file):
            found = losetup.find(path)
            if not found:
                found = [losetup.attach(path)]
                attached.append(found[0])
            loops.append(found[0])
        data_sectors = os.path.getsize(pool.data_file) // dmsetup.SECTOR_SIZE
        table = dmsetup.thin_pool_table(loops[1], loops[0], data_sectors, pool.block_size_sectors)
        try:
            dmsetup.create(pool.name, table)
        except DeviceExists:
            # Up already (the common case after a restart): one command, the same as asking.
            for loop in attached:
                losetup.detach(loop)
            return False
    except BaseException:
        for loop in attached:
            with contextlib.suppress(HostError):
                losetup.detach(loop)
        raise
    return True


def check_empty(pool: PoolRecord) -> None:
    """Refuse to take a pool that already holds something: berth would not know its devices."""
    status = dmsetup.pool_status(pool.name)
    if status.transaction_id != 0 or status.used_data_blocks != 0:
        raise HostError(
            f"thin pool {pool.name} is not empty (transaction id {status.transaction_id}, "
            f"{status.used_data_blocks} data blocks used) and berth has no record of it; give "
            "berth an empty pool, or restore the database that describes this one"
        )


def deactivate(pool: PoolRecord) -> None:
    """Remove a loop-lvm pool's dm device and detach its loops; an existing pool is left up."""
    if not pool.is_loopback:
        return
    with contextlib.suppress(NoSuchDevice):
        dmsetup.remove(pool.name)
    for path in (pool.data_file, pool.metadata_file):
        if path is not None:
            losetup.detach_all(path)


def loop_devices(pool: PoolRecord) -> tuple[str, str]:
    """The loop devices behind a loop-lvm pool (empty strings when not attached)."""
    found = []
    for path in (pool.data_file, pool.metadata_file):
        devices = losetup.find(path) if path is not None else []
        found.append(devices[0] if devices else "")
    return found[0], found[1]
