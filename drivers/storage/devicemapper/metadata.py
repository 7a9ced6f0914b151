"""What the DeviceSet remembers, and the protocol of the store that remembers it.

The DeviceSet decides (policy); a :class:`DeviceMetadataStore` records (persistence). berth's store
is SQL (``fsm.store.thin.SQLDeviceMetadataStore``); tests may use any other. Records are plain
frozen dataclasses so that no caller holds a database object across a ``dmsetup`` call.

The pool's *transaction id* orders every change of the pool's metadata (a device created or
deleted). Before such a change the store records an *open transaction* (the next id, the device's
hash and thin id); after it the kernel's id is moved to the same number with
``set_transaction_id`` and the store closes the transaction. After a crash, comparing the open id
with the kernel's says whether the change happened.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

#: The hash of the device every parentless layer is a snapshot of.
BASE_HASH = "base"


class DeviceState(enum.StrEnum):
    """Where a thin device is in its life; persisted before and after each dm operation."""

    #: Id allocated, ``create_thin``/``create_snap`` under way (or its filesystem work).
    CREATING = "creating"
    #: Exists in the pool, not activated.
    CREATED = "created"
    #: Has a /dev/mapper node; mounted when ``mount_count`` > 0.
    ACTIVE = "active"
    #: ``delete`` under way.
    DELETING = "deleting"
    #: Gone from the pool; a store drops such a row, which frees its id.
    DELETED = "deleted"
    #: An operation failed half-way and could not be undone; needs a person (or ``remove``).
    FAULTY = "faulty"


@dataclass(frozen=True)
class OpenTransaction:
    """A pool change in progress: the id it will commit as, and the device it concerns."""

    transaction_id: int
    device_hash: str
    device_id: int


@dataclass(frozen=True)
class PoolRecord:
    """The thin pool berth owns (one per data root)."""

    name: str
    pool_device: str  # /dev/mapper/<name>
    data_file: str | None  # None for an existing pool (thin_pool_device)
    metadata_file: str | None
    block_size_sectors: int
    base_size: int
    transaction_id: int = 0
    open_transaction: OpenTransaction | None = None
    base_fs_uuid: str | None = None

    @property
    def is_loopback(self) -> bool:
        return self.data_file is not None


@dataclass(frozen=True)
class DeviceRecord:
    """One thin device: an image layer, a container's layer, or the base."""

    hash: str
    device_id: int
    parent: str | None
    size: int
    transaction_id: int
    state: DeviceState
    mount_count: int = 0
    mount_path: str | None = None


class StaleRecord(Exception):
    """The record changed under us (another process moved it); re-read and decide again."""


class DeviceMetadataStore(Protocol):
    """Persistence of one or more pools and their devices. Every method is one short, atomic
    unit of work; none is called while a dm operation is in flight.
    """

    # --- pools -----------------------------------------------------------------------------------

    def load_pool(self, name: str) -> PoolRecord | None:
        """The pool's record, or ``None`` when the store has never seen it."""

    def add_pool(self, pool: PoolRecord) -> PoolRecord:
        """Record a new pool; return the stored record (the existing one if it was there)."""

    def remove_pool(self, name: str) -> None:
        """Forget a pool and all its devices."""

    def set_base_fs_uuid(self, name: str, uuid: str | None) -> None:
        """Record the base filesystem's UUID (``None``: the base is not made yet)."""

    def set_transaction_id(self, name: str, transaction_id: int) -> None:
        """Adopt ``transaction_id`` as the pool's committed id (no transaction may be open)."""

    # --- pool transactions -----------------------------------------------------------------------

    def begin_create(self, name: str, hash: str, parent: str | None, size: int) -> DeviceRecord:
        """Allocate a free thin id, add the device as ``creating``, and open the pool's next
        transaction for it, atomically. Raises ``DeviceExists`` when ``hash`` is taken and
        :class:`StaleRecord` when another transaction is open.
        """

    def begin_delete(self, name: str, hash: str, expected: DeviceState) -> DeviceRecord:
        """Move the device from ``expected`` to ``deleting`` and open the pool's next transaction
        for it, atomically. :class:`StaleRecord` if it is not in ``expected`` or a transaction is
        open.
        """

    def commit_transaction(self, name: str, device_state: DeviceState | None = None) -> None:
        """Close the open transaction: the pool's id becomes the open one. A ``deleting`` device
        is dropped (its id is free again); a ``creating`` one moves to ``device_state`` if given.
        """

    def abort_transaction(self, name: str, restore: DeviceState = DeviceState.CREATED) -> None:
        """Close the open transaction without committing it, because the pool message failed and
        the kernel's metadata did not change: a ``creating`` device is dropped, a ``deleting`` one
        goes back to ``restore``; the pool keeps its id.
        """

    def rollback_transaction(self, name: str) -> None:
        """Close the open transaction after its device was deleted from the pool (recovery after
        a crash): drop the device's record whatever its state, free its id, keep the pool's id.
        """

    # --- devices ---------------------------------------------------------------------------------

    def get_device(self, name: str, hash: str) -> DeviceRecord | None:
        """One device, or ``None``."""

    def list_devices(self, name: str) -> list[DeviceRecord]:
        """Every device of the pool, by thin id."""

    def set_state(
        self,
        name: str,
        hash: str,
        state: DeviceState,
        *,
        expected: DeviceState | None = None,
        mount_count: int | None = None,
        mount_path: str | None = None,
    ) -> DeviceRecord:
        """Move a device to ``state`` (only from ``expected`` when given, else
        :class:`StaleRecord`); ``mount_count``/``mount_path`` are set when given (``mount_path``
        is cleared when ``mount_count`` is 0).
        """

    def set_mount_count(self, name: str, hash: str, expected: int, mount_count: int) -> None:
        """Compare-and-swap the mount refcount (:class:`StaleRecord` if it was not ``expected``)."""

    def forget_device(self, name: str, hash: str) -> None:
        """Drop the device's record, freeing its thin id (it must be gone from the pool)."""
