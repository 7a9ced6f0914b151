"""Images, the names they go by, and the storage layers they and their containers stand on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

#: ``applying``: being written (by ``owner``); ``ready``: in use; ``removing``: being deleted.
#: Recovery removes the layer of an ``applying`` or ``removing`` row whose owner has died.
LAYER_STATES = ("applying", "ready", "removing")
#: an image's layer (keyed by chain ID) or a container's own (keyed by the container's id)
LAYER_KINDS = ("image", "container")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Image(Base):
    """An image: its configuration (OCI image config) and the top of its chain of layers."""

    __tablename__ = "images"

    #: the hex sha256 of the image's config JSON (Docker's image id); for an image imported by a
    #: berth older than layered images, the sha256 of its tarball
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the chain ID (hex) of its top layer: the ``layers`` row a container's layer snapshots
    top_layer: Mapped[str] = mapped_column(String(64))
    #: the OCI image config as the image carried it (architecture, os, config, rootfs, history)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``/etc/passwd`` and ``/etc/group`` of the top layer, read once when the image is stored,
    #: so that ``create(user=...)`` resolves a name without mounting anything
    accounts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: the registry's manifest digest (``sha256:...``) when pulled, else NULL
    repo_digest: Mapped[str | None] = mapped_column(String(160))
    #: the storage driver that holds its layers (``vfs``, ``devicemapper``)
    storage_driver: Mapped[str] = mapped_column(String(32))
    #: bytes of the files of all its layers
    size: Mapped[int] = mapped_column(BigInteger)
    #: when berth stored it
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImageName(Base):
    """A name an image goes by (``repo:tag``, or a plain name for ``image import``): one image
    per name, any number of names per image; an image without names is dangling."""

    __tablename__ = "image_names"
    __table_args__ = (Index(None, "image_id"),)

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64), ForeignKey("images.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Layer(Base):
    """One storage layer on one node: an image layer whose parent is the layer below it, or a
    container's own layer, a snapshot (devicemapper) or copy (vfs) of its image's top layer.

    ``refs`` counts what stands on the layer: layers whose parent it is, images whose top it is.
    A layer at zero refs that no image needs is removed with the last image above it.
    """

    __tablename__ = "layers"
    __table_args__ = (
        CheckConstraint(f"state IN ({_quoted(LAYER_STATES)})", name="layer_state"),
        CheckConstraint(f"kind IN ({_quoted(LAYER_KINDS)})", name="layer_kind"),
        CheckConstraint("refs >= 0", name="refs_not_negative"),
        Index(None, "node", "parent"),
    )

    #: layers are host resources: each node has its own
    node: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: the storage driver's id: the chain ID's hex for an image layer, the container's id
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: the driver that holds it (``vfs``, ``devicemapper``)
    storage_driver: Mapped[str] = mapped_column(String(32))
    #: ``sha256:...`` of the layer's uncompressed tar; NULL for a container's layer
    diff_id: Mapped[str | None] = mapped_column(String(80))
    parent: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    refs: Mapped[int] = mapped_column(Integer, default=0)
    #: bytes of the files the layer's tar wrote
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``node:pid:start-time`` of the process writing or removing it, else NULL
    owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = ["LAYER_KINDS", "LAYER_STATES", "Image", "ImageName", "Layer"]
