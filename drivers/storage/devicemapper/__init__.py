"""The devicemapper storage driver: layers as snapshots in a device-mapper thin pool.

Public surface: :class:`DevicemapperDriver` (the graph driver), :class:`DeviceSet` (the pool and
its devices), :class:`DevicemapperOptions`, the store protocol :class:`DeviceMetadataStore` with
its records, and :func:`dm_thin_available`.
"""

from __future__ import annotations

import contextlib

from drivers.commands import QUICK, run
from drivers.errors import HostError
from drivers.storage.devicemapper import dmsetup
from drivers.storage.devicemapper.config import DevicemapperOptions, InvalidOptions, OptionProblem
from drivers.storage.devicemapper.deviceset import CRASH_POINTS, DeviceSet
from drivers.storage.devicemapper.driver import DevicemapperDriver
from drivers.storage.devicemapper.metadata import (
    BASE_HASH,
    DeviceMetadataStore,
    DeviceRecord,
    DeviceState,
    OpenTransaction,
    PoolRecord,
    StaleRecord,
)

__all__ = [
    "BASE_HASH",
    "CRASH_POINTS",
    "DeviceMetadataStore",
    "DeviceRecord",
    "DeviceSet",
    "DeviceState",
    "DevicemapperDriver",
    "DevicemapperOptions",
    "InvalidOptions",
    "OpenTransaction",
    "OptionProblem",
    "PoolRecord",
    "StaleRecord",
    "dm_thin_available",
]


def dm_thin_available() -> bool:
    """Whether this kernel offers the thin-pool target (loading its module if need be).

    Example: ``driver = "devicemapper" if dm_thin_available() else "vfs"``.
    """
    with contextlib.suppress(HostError):
        run(["modprobe", "dm_thin_pool"], timeout=QUICK)
    try:
        return "thin-pool" in dmsetup.targets()
    except HostError:
        return False
