"""The devicemapper driver's thin pool and thin devices (Docker's deviceset metadata, as rows).

Operators can read the pool's state with plain SQL, for example the devices in flight::

    SELECT hash, device_id, state, mount_count FROM thin_devices WHERE state <> 'created';
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

#: every state a thin device row can be in; ``deleted`` rows are dropped, which frees the id
THIN_DEVICE_STATES = ("creating", "created", "active", "deleting", "deleted", "faulty")
_STATE_LIST = ", ".join(f"'{s}'" for s in THIN_DEVICE_STATES)
#: thin device ids are 24 bits wide in the pool's metadata
MAX_THIN_DEVICE_ID = 0xFFFFFF


class ThinPool(Base):
    """A device-mapper thin pool berth owns, and its transaction counter."""

    __tablename__ = "thin_pools"
    __table_args__ = (
        UniqueConstraint("name"),
        # A pending transaction is recorded whole or not at all.
        CheckConstraint(
            "(open_transaction_id IS NULL AND open_device_hash IS NULL"
            " AND open_device_id IS NULL) OR (open_transaction_id IS NOT NULL"
            " AND open_device_hash IS NOT NULL AND open_device_id IS NOT NULL)",
            name="open_transaction_whole",
        ),
        CheckConstraint("block_size_sectors > 0", name="block_size_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: the dm name of the pool (``berth-<8 hex>-pool`` for loop-lvm)
    name: Mapped[str] = mapped_column(String(128))
    #: the sparse files behind loop-lvm; NULL for an existing pool (``thin_pool_device``)
    data_file: Mapped[str | None] = mapped_column(String(4096))
    metadata_file: Mapped[str | None] = mapped_column(String(4096))
    #: ``/dev/mapper/<name>``
    pool_device: Mapped[str] = mapped_column(String(4096))
    block_size_sectors: Mapped[int] = mapped_column(Integer)
    #: bytes
    base_size: Mapped[int] = mapped_column(BigInteger)
    #: the last transaction id committed both here and in the kernel (``dmsetup status``)
    transaction_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the pending change: the id it will commit as, and the device it concerns
    open_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    open_device_hash: Mapped[str | None] = mapped_column(String(64))
    open_device_id: Mapped[int | None] = mapped_column(Integer)
    #: UUID of the base device's filesystem, checked at every start; NULL until it is made
    base_fs_uuid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThinDevice(Base):
    """One thin device in a pool: the base, an image layer or a container's layer."""

    __tablename__ = "thin_devices"
    __table_args__ = (
        UniqueConstraint("pool_id", "device_id"),
        UniqueConstraint("pool_id", "hash"),
        CheckConstraint(f"state IN ({_STATE_LIST})", name="state"),
        CheckConstraint(f"device_id BETWEEN 0 AND {MAX_THIN_DEVICE_ID}", name="device_id_24_bit"),
        CheckConstraint("mount_count >= 0", name="mount_count_not_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(Integer, ForeignKey("thin_pools.id", ondelete="CASCADE"))
    #: the pool's own id for the device (``create_thin``/``create_snap``/``delete`` messages)
    device_id: Mapped[int] = mapped_column(Integer)
    #: the image or container id, or ``base``
    hash: Mapped[str] = mapped_column(String(64))
    #: hash of the device this one is a snapshot of; NULL for the base
    parent: Mapped[str | None] = mapped_column(String(64))
    #: virtual size in bytes
    size: Mapped[int] = mapped_column(BigInteger)
    #: the pool transaction that created the device
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    #: how many ``get`` calls hold the mount; the first mounts, the last ``put`` unmounts
    mount_count: Mapped[int] = mapped_column(Integer, default=0)
    mount_path: Mapped[str | None] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
