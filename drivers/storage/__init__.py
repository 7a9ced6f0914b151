"""Storage (graph) drivers: where a container's root filesystem comes from.

Every driver has the seed's interface, :class:`StorageDriver`. ``id`` is an image or container id
(64 hex digits); ``parent`` the id whose contents the new layer starts from.
"""

from __future__ import annotations

from typing import Any, Protocol


class StorageDriver(Protocol):
    """The seed's graph-driver interface."""

    name: str

    def create(self, id: str, parent: str | None) -> None:
        """Make a new layer, a copy (or snapshot) of ``parent``'s, or empty without one."""

    def remove(self, id: str) -> None:
        """Delete the layer; a layer that does not exist is already removed."""

    def get(self, id: str, mount_label: str = "") -> str:
        """Make the layer's filesystem available and return the path of its root."""

    def put(self, id: str) -> None:
        """Release what ``get`` took; a ``put`` without a ``get`` does nothing."""

    def exists(self, id: str) -> bool:
        """Whether the layer exists."""

    def status(self) -> list[tuple[str, str]]:
        """Facts about the driver for a person to read, in order (``docker info`` style)."""

    def cleanup(self) -> None:
        """Release what the driver holds on the host (mounts, pools) at shutdown."""

    def layers(self) -> list[str]:
        """Ids of every layer the driver holds, for reconciliation against the database."""


def status_dict(driver: StorageDriver) -> dict[str, Any]:
    return dict(driver.status())
