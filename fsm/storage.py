"""Choosing and opening the storage driver."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivers.storage import StorageDriver
from drivers.storage.vfs import VfsDriver
from fsm.errors import ConfigError, host_errors
from fsm.store.database import Database


def choose_storage(requested: str | None, db: Database) -> str:
    """``requested``, else the driver the database's images already live in, else
    devicemapper where the kernel has the dm-thin target, else vfs."""
    if requested is not None:
        return requested
    used = db.images.storage_driver_in_use()
    if used is not None:
        return used
    from drivers.storage.devicemapper import dm_thin_available

    return "devicemapper" if dm_thin_available() else "vfs"


def check_options(name: str | None, options: Mapping[str, Any]) -> None:
    """Refuse driver options before anything is touched (every bad one at once)."""
    if not options:
        return
    if name != "devicemapper":
        raise ConfigError("storage_options", dict(options),
                          "options only for storage='devicemapper' (vfs takes none)")
    from drivers.storage.devicemapper import DevicemapperOptions

    with host_errors():
        DevicemapperOptions.from_mapping(options)


def open_storage(requested: str | None, root: Path, db: Database,
                 options: Mapping[str, Any]) -> StorageDriver:
    name = choose_storage(requested, db)
    with host_errors():
        if name == "vfs":
            return VfsDriver(root / "vfs")
        if name == "devicemapper":
            from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions
            return DevicemapperDriver(root, db.thin,
                                      DevicemapperOptions.from_mapping(options))
    raise ConfigError("storage", name, "'vfs' or 'devicemapper'")
