"""Storage (graph) drivers: where a container's root filesystem comes from.

Every driver has the seed's interface, :class:`StorageDriver`. ``id`` is an image or container id
(64 hex digits); ``parent`` the id whose contents the new layer starts from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class ApplyTarget:
    """Where an image layer's tar stream is applied, and how (the keywords of
    :func:`drivers.image.apply.apply_layer`): into ``root``, the merged tree of the layer
    (``whiteouts="delete"``: vfs, devicemapper), or into the layer's own overlay upper directory
    over the ``lowers``, nearest first (``"overlay"``)."""

    root: str
    whiteouts: Literal["delete", "overlay"] = "delete"
    lowers: tuple[str, ...] = ()


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

    def apply_target(self, id: str) -> AbstractContextManager[ApplyTarget]:
        """Where to apply an image layer's tar onto the new layer ``id``, held for the
        ``with`` block (:func:`mounted_target` for a driver whose layers are merged trees)."""


@contextmanager
def mounted_target(driver: StorageDriver, id: str) -> Iterator[ApplyTarget]:
    """The layer's root from ``get``, released with ``put``: a merged tree, where whiteouts
    delete."""
    root = driver.get(id)
    try:
        yield ApplyTarget(root)
    finally:
        driver.put(id)


def status_dict(driver: StorageDriver) -> dict[str, Any]:
    return dict(driver.status())
