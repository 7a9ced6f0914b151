"""Choosing and opening the storage driver."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from drivers.storage import StorageDriver
from drivers.storage.vfs import VfsDriver
from fsm.errors import ConfigError, host_errors
from models import Image


def choose_storage(requested: str | None, engine: Engine) -> str:
    """``requested``, else the driver the database's images already live in, else
    devicemapper where the kernel has the dm-thin target, else vfs."""
    if requested is not None:
        return requested
    with engine.connect() as connection:
        used = connection.execute(select(Image.storage_driver).limit(1)).scalar_one_or_none()
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


def open_storage(requested: str | None, root: Path, engine: Engine,
                 options: Mapping[str, Any]) -> StorageDriver:
    name = choose_storage(requested, engine)
    with host_errors():
        if name == "vfs":
            return VfsDriver(root / "vfs")
        if name == "devicemapper":
            from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions
            from fsm.thin_metadata import SQLDeviceMetadataStore

            return DevicemapperDriver(root, SQLDeviceMetadataStore(engine),
                                      DevicemapperOptions.from_mapping(options))
    raise ConfigError("storage", name, "'vfs' or 'devicemapper'")
