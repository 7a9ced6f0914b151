"""The devicemapper graph driver: the seed's Create/Remove/Get/Put/Exists/Cleanup on a DeviceSet."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager

from drivers.errors import HostError
from drivers.storage import ApplyTarget, mounted_target
from drivers.storage.devicemapper.config import DevicemapperOptions
from drivers.storage.devicemapper.deviceset import DeviceSet
from drivers.storage.devicemapper.layout import check_layer_id
from drivers.storage.devicemapper.metadata import BASE_HASH, DeviceMetadataStore


class DevicemapperDriver:
    """Layers as thin snapshots in one device-mapper thin pool.

    Opening the driver brings the pool up (loop-lvm files under ``<root>/devicemapper`` unless
    ``options.thin_pool_device`` names an existing pool) and reconciles what a crash left.

    Example::

        driver = DevicemapperDriver("/var/lib/berth", SQLDeviceMetadataStore(engine))
        driver.create(image_id, parent=None)
        driver.create(container_id, parent=image_id)
        rootfs = driver.get(container_id)  # <root>/devicemapper/mnt/<id>/rootfs
        driver.put(container_id)
    """

    name = "devicemapper"

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: DeviceMetadataStore,
        options: DevicemapperOptions | None = None,
    ) -> None:
        self.devices = DeviceSet(root, store, options)
        self.devices.start()

    def create(self, id: str, parent: str | None, size: int | None = None) -> None:
        """Add a layer as a snapshot of ``parent`` (of the empty base device without one).
        ``size`` in bytes defaults to the parent's; it may grow, never shrink.
        """
        _check_id(id)
        if parent is not None:
            _check_id(parent)
        self.devices.add_device(id, parent, size)

    def remove(self, id: str) -> None:
        """Unmount, deactivate and delete the layer and its mount directory."""
        if id == BASE_HASH or not self.exists(id):
            return
        self.devices.delete_device(id)

    def get(self, id: str, mount_label: str = "") -> str:
        """Mount the layer at ``mnt/<id>`` and return ``mnt/<id>/rootfs``, making ``rootfs/``
        and an ``id`` file on first use; on any error the mount is released again.
        """
        _check_id(id)
        mount_point = self.devices.mount_device(id, mount_label)
        try:
            rootfs = os.path.join(mount_point, "rootfs")
            os.makedirs(rootfs, mode=0o755, exist_ok=True)
            id_file = os.path.join(mount_point, "id")
            if not os.path.exists(id_file):
                with open(id_file, "w", encoding="utf-8") as file:
                    file.write(id)
                os.chmod(id_file, 0o600)
        except BaseException:
            with contextlib.suppress(HostError):
                self.devices.unmount_device(id)
            raise
        return rootfs

    def put(self, id: str) -> None:
        """Release one ``get``; the last one unmounts and deactivates."""
        self.devices.unmount_device(id)

    def exists(self, id: str) -> bool:
        return id != BASE_HASH and self.devices.has_device(id)

    def status(self) -> list[tuple[str, str]]:
        return self.devices.status()

    def cleanup(self) -> None:
        """Deactivate what nobody has mounted; mounted layers (running containers) and the pool
        stay up.
        """
        self.devices.deactivate_unused()

    def shutdown_pool(self) -> None:
        """Take the pool down and detach its loops; refused while a layer is mounted."""
        self.devices.shutdown_pool()

    def layers(self) -> list[str]:
        return [d.hash for d in self.devices.list_devices() if d.hash != BASE_HASH]

    def apply_target(self, id: str) -> AbstractContextManager[ApplyTarget]:
        return mounted_target(self, id)


def _check_id(id: str) -> None:
    check_layer_id(id)
    if id == BASE_HASH:
        raise HostError(f"{BASE_HASH!r} is reserved for the pool's base device", errno=22)
