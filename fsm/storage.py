"""Choosing and opening the storage driver."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.storage import StorageDriver
from drivers.storage.overlay import LINK_DIR, OverlayDriver, overlay_unsupported
from drivers.storage.vfs import VfsDriver
from fsm.errors import ConfigError, host_errors
from fsm.store.database import Database

DRIVERS = ("devicemapper", "overlay", "vfs")


@dataclass(frozen=True)
class StorageChoice:
    """The driver a data root gets, and why not a better one (a sentence for ``pool status``)."""

    name: str
    why_not_overlay: str | None = None


def choose_storage(requested: str | None, db: Database, root: Path,
                   node: str | None = None) -> StorageChoice:
    """The driver the data root's layers already live in (its images', or with ``node`` its
    own layers'), which ``requested`` may only repeat; else ``requested``; else devicemapper
    where the kernel has the dm-thin target, overlay where the kernel and the data root's
    filesystem can stack it (tried once per data root: its ``overlay/l`` says it worked), else
    vfs."""
    used = db.images.storage_driver_in_use()
    if used is None and node is not None:
        used = db.layers.storage_driver_in_use(node)
    if used is not None:
        if requested is not None and requested != used:
            raise ConfigError("storage", requested,
                              f"the layers of {root} live in the {used} driver: use "
                              f"storage={used!r}, or another data root")
        return StorageChoice(used)
    if requested is not None:
        return StorageChoice(requested)
    from drivers.storage.devicemapper import dm_thin_available

    if dm_thin_available():
        return StorageChoice("devicemapper")
    if (root / "overlay" / LINK_DIR).is_dir():
        return StorageChoice("overlay")
    with host_errors():
        why_not = overlay_unsupported(root / "overlay")
    return StorageChoice("overlay") if why_not is None else StorageChoice("vfs", why_not)


def check_options(name: str | None, options: Mapping[str, Any]) -> None:
    """Refuse driver options before anything is touched (every bad one at once)."""
    if not options:
        return
    if name != "devicemapper":
        raise ConfigError("storage_options", dict(options),
                          "options only for storage='devicemapper' (overlay and vfs take none)")
    from drivers.storage.devicemapper import DevicemapperOptions

    with host_errors():
        DevicemapperOptions.from_mapping(options)


def open_storage(requested: str | None, root: Path, db: Database,
                 options: Mapping[str, Any], node: str | None = None) -> StorageDriver:
    if requested is not None and requested not in DRIVERS:
        raise ConfigError("storage", requested, "'devicemapper', 'overlay' or 'vfs'")
    choice = choose_storage(requested, db, root, node)
    name = choice.name
    with host_errors():
        if name == "vfs":
            return VfsDriver(root / "vfs", why_not_overlay=choice.why_not_overlay)
        if name == "overlay":
            if requested == "overlay" and not (root / "overlay" / LINK_DIR).is_dir():
                # asked for on a new data root: refused with the reason, not at the first mount
                why_not = overlay_unsupported(root / "overlay")
                if why_not is not None:
                    raise ConfigError("storage", requested, why_not)
            return OverlayDriver(root / "overlay")
        if name == "devicemapper":
            from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions
            return DevicemapperDriver(root, db.thin,
                                      DevicemapperOptions.from_mapping(options))
    raise ConfigError("storage", name, "'devicemapper', 'overlay' or 'vfs'")
