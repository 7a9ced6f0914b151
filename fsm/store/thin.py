"""The devicemapper DeviceSet's records, kept in SQL (``thin_pools``, ``thin_devices``).

Every method is one short database transaction (``with engine.begin()``); the DeviceSet calls
them between host commands, never across one. Changes that must not interleave with another
process's are compare-and-swaps (``UPDATE ... WHERE state = :expected``), and thin ids are
allocated by inserting and retrying on the unique constraint ``(pool_id, device_id)``, so two
processes can never hand out the same id.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Engine, Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from drivers.errors import DeviceExists, NoSuchDevice
from drivers.storage.devicemapper.metadata import (
    DeviceRecord,
    DeviceState,
    OpenTransaction,
    PoolRecord,
    StaleRecord,
)
from models.base import utcnow
from models.thin import MAX_THIN_DEVICE_ID, ThinDevice, ThinPool

pools = cast(Table, ThinPool.__table__)
devices = cast(Table, ThinDevice.__table__)

#: How often an id allocation that lost a race is retried with the next free id.
ALLOCATION_ATTEMPTS = 20


class SQLDeviceMetadataStore:
    """A :class:`~drivers.storage.devicemapper.metadata.DeviceMetadataStore` in SQL.

    Example: ``DeviceSet(root, SQLDeviceMetadataStore(engine))``.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- pools -----------------------------------------------------------------------------------

    def load_pool(self, name: str) -> PoolRecord | None:
        with self.engine.begin() as conn:
            row = conn.execute(select(pools).where(pools.c.name == name)).mappings().first()
        return None if row is None else _pool_record(row)

    def add_pool(self, pool: PoolRecord) -> PoolRecord:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(pools).values(
                        name=pool.name,
                        data_file=pool.data_file,
                        metadata_file=pool.metadata_file,
                        pool_device=pool.pool_device,
                        block_size_sectors=pool.block_size_sectors,
                        base_size=pool.base_size,
                        transaction_id=pool.transaction_id,
                        base_fs_uuid=pool.base_fs_uuid,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # another process recorded it first; theirs is the record
        stored = self.load_pool(pool.name)
        assert stored is not None
        return stored

    def remove_pool(self, name: str) -> None:
        with self.engine.begin() as conn:
            pool_id = _pool_id(conn, name)
            conn.execute(delete(devices).where(devices.c.pool_id == pool_id))
            conn.execute(delete(pools).where(pools.c.id == pool_id))

    def set_base_fs_uuid(self, name: str, uuid: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(pools).where(pools.c.name == name).values(base_fs_uuid=uuid))

    def set_transaction_id(self, name: str, transaction_id: int) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(pools)
                .where(pools.c.name == name, pools.c.open_transaction_id.is_(None))
                .values(transaction_id=transaction_id)
            )
            if result.rowcount != 1:
                raise StaleRecord(f"pool {name} has an open transaction")

    # --- pool transactions -----------------------------------------------------------------------

    def begin_create(self, name: str, hash: str, parent: str | None, size: int) -> DeviceRecord:
        for _ in range(ALLOCATION_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    pool = _pool_row(conn, name)
                    if _device_row(conn, pool["id"], hash) is not None:
                        raise DeviceExists(f"layer {hash!r} already exists in pool {name}")
                    transaction_id = pool["transaction_id"] + 1
                    device_id = _free_device_id(conn, pool["id"])
                    _open(conn, name, transaction_id, hash, device_id)
                    conn.execute(
                        insert(devices).values(
                            pool_id=pool["id"],
                            device_id=device_id,
                            hash=hash,
                            parent=parent,
                            size=size,
                            transaction_id=transaction_id,
                            state=DeviceState.CREATING.value,
                            mount_count=0,
                            created_at=utcnow(),
                            updated_at=utcnow(),
                        )
                    )
                return DeviceRecord(
                    hash=hash,
                    device_id=device_id,
                    parent=parent,
                    size=size,
                    transaction_id=transaction_id,
                    state=DeviceState.CREATING,
                )
            except IntegrityError:
                # Another process took this id (or this hash) between our read and our insert.
                continue
        raise StaleRecord(f"could not allocate a thin id in pool {name}: too much contention")

    def begin_delete(self, name: str, hash: str, expected: DeviceState) -> DeviceRecord:
        with self.engine.begin() as conn:
            pool = _pool_row(conn, name)
            row = _device_row(conn, pool["id"], hash)
            if row is None:
                raise NoSuchDevice(f"layer {hash!r} does not exist in pool {name}")
            _open(conn, name, pool["transaction_id"] + 1, hash, row["device_id"])
            _swap_state(conn, pool["id"], hash, expected, {"state": DeviceState.DELETING.value})
            row = _device_row(conn, pool["id"], hash)
            assert row is not None
            return _device_record(row)

    def commit_transaction(self, name: str, device_state: DeviceState | None = None) -> None:
        with self.engine.begin() as conn:
            pool = _pool_row(conn, name)
            if pool["open_transaction_id"] is None:
                raise StaleRecord(f"pool {name} has no open transaction")
            _close(conn, pool, pool["open_transaction_id"])
            where = (devices.c.pool_id == pool["id"], devices.c.hash == pool["open_device_hash"])
            conn.execute(
                delete(devices).where(*where, devices.c.state == DeviceState.DELETING.value)
            )
            if device_state is not None:
                conn.execute(
                    update(devices)
                    .where(*where, devices.c.state == DeviceState.CREATING.value)
                    .values(state=device_state.value, updated_at=utcnow())
                )

    def abort_transaction(self, name: str, restore: DeviceState = DeviceState.CREATED) -> None:
        with self.engine.begin() as conn:
            pool = _pool_row(conn, name)
            if pool["open_transaction_id"] is None:
                return
            _close(conn, pool, pool["transaction_id"])
            where = (devices.c.pool_id == pool["id"], devices.c.hash == pool["open_device_hash"])
            conn.execute(
                delete(devices).where(*where, devices.c.state == DeviceState.CREATING.value)
            )
            conn.execute(
                update(devices)
                .where(*where, devices.c.state == DeviceState.DELETING.value)
                .values(state=restore.value, updated_at=utcnow())
            )

    def rollback_transaction(self, name: str) -> None:
        with self.engine.begin() as conn:
            pool = _pool_row(conn, name)
            if pool["open_transaction_id"] is None:
                return
            _close(conn, pool, pool["transaction_id"])
            conn.execute(
                delete(devices).where(
                    devices.c.pool_id == pool["id"],
                    devices.c.hash == pool["open_device_hash"],
                    devices.c.device_id == pool["open_device_id"],
                )
            )

    # --- devices ---------------------------------------------------------------------------------

    def get_device(self, name: str, hash: str) -> DeviceRecord | None:
        with self.engine.begin() as conn:
            pool_id = _pool_id(conn, name)
            row = _device_row(conn, pool_id, hash) if pool_id is not None else None
        return None if row is None else _device_record(row)

    def list_devices(self, name: str) -> list[DeviceRecord]:
        with self.engine.begin() as conn:
            pool_id = _pool_id(conn, name)
            rows = conn.execute(
                select(devices).where(devices.c.pool_id == pool_id).order_by(devices.c.device_id)
            ).mappings()
            return [_device_record(row) for row in rows]

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
        values: dict[str, Any] = {"state": state.value}
        if mount_count is not None:
            values["mount_count"] = mount_count
            values["mount_path"] = mount_path if mount_count > 0 else None
        with self.engine.begin() as conn:
            pool_id = _pool_id(conn, name)
            _swap_state(conn, pool_id, hash, expected, values)
            row = _device_row(conn, pool_id, hash)
            assert row is not None
            return _device_record(row)

    def set_mount_count(self, name: str, hash: str, expected: int, mount_count: int) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(devices)
                .where(
                    devices.c.pool_id == _pool_id(conn, name),
                    devices.c.hash == hash,
                    devices.c.mount_count == expected,
                )
                .values(mount_count=mount_count, updated_at=utcnow())
            )
            if result.rowcount != 1:
                raise StaleRecord(f"layer {hash!r}: mount count is no longer {expected}")

    def forget_device(self, name: str, hash: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(devices).where(
                    devices.c.pool_id == _pool_id(conn, name), devices.c.hash == hash
                )
            )


# --- helpers ---------------------------------------------------------------------------------


def _pool_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(pools.c.id).where(pools.c.name == name)).scalar()


def _pool_row(conn: Connection, name: str) -> RowMapping:
    row = conn.execute(select(pools).where(pools.c.name == name)).mappings().first()
    if row is None:
        raise StaleRecord(f"pool {name} is not recorded")
    return row


def _device_row(conn: Connection, pool_id: int | None, hash: str) -> RowMapping | None:
    return (
        conn.execute(select(devices).where(devices.c.pool_id == pool_id, devices.c.hash == hash))
        .mappings()
        .first()
    )


def _free_device_id(conn: Connection, pool_id: int) -> int:
    """The id after the highest in use, or the lowest gap once the 24 bits run out."""
    highest = conn.execute(
        select(func.max(devices.c.device_id)).where(devices.c.pool_id == pool_id)
    ).scalar()
    if highest is None:
        return 1
    if highest < MAX_THIN_DEVICE_ID:
        return int(highest) + 1
    used = conn.execute(
        select(devices.c.device_id)
        .where(devices.c.pool_id == pool_id)
        .order_by(devices.c.device_id)
    ).scalars()
    candidate = 1
    for device_id in used:
        if device_id > candidate:
            break
        candidate = device_id + 1
    if candidate > MAX_THIN_DEVICE_ID:
        raise StaleRecord("every thin id of the pool is in use")
    return candidate


def _open(conn: Connection, name: str, transaction_id: int, hash: str, device_id: int) -> None:
    # Compare-and-swap: only one change of the pool's metadata may be pending at a time.
    result = conn.execute(
        update(pools)
        .where(
            pools.c.name == name,
            pools.c.open_transaction_id.is_(None),
            pools.c.transaction_id == transaction_id - 1,
        )
        .values(open_transaction_id=transaction_id, open_device_hash=hash, open_device_id=device_id)
    )
    if result.rowcount != 1:
        raise StaleRecord(f"pool {name} already has an open transaction")


def _close(conn: Connection, pool: RowMapping, transaction_id: int) -> None:
    conn.execute(
        update(pools)
        .where(pools.c.id == pool["id"])
        .values(
            transaction_id=transaction_id,
            open_transaction_id=None,
            open_device_hash=None,
            open_device_id=None,
        )
    )


def _swap_state(
    conn: Connection,
    pool_id: int | None,
    hash: str,
    expected: DeviceState | None,
    values: dict[str, Any],
) -> None:
    where = [devices.c.pool_id == pool_id, devices.c.hash == hash]
    if expected is not None:
        where.append(devices.c.state == expected.value)
    result = conn.execute(update(devices).where(*where).values(**values, updated_at=utcnow()))
    if result.rowcount != 1:
        current = _device_row(conn, pool_id, hash)
        found = "does not exist" if current is None else f"is {current['state']}"
        raise StaleRecord(f"layer {hash!r} {found}, expected {expected}")


def _pool_record(row: RowMapping) -> PoolRecord:
    opened = None
    if row["open_transaction_id"] is not None:
        opened = OpenTransaction(
            transaction_id=row["open_transaction_id"],
            device_hash=row["open_device_hash"],
            device_id=row["open_device_id"],
        )
    return PoolRecord(
        name=row["name"],
        pool_device=row["pool_device"],
        data_file=row["data_file"],
        metadata_file=row["metadata_file"],
        block_size_sectors=row["block_size_sectors"],
        base_size=row["base_size"],
        transaction_id=row["transaction_id"],
        open_transaction=opened,
        base_fs_uuid=row["base_fs_uuid"],
    )


def _device_record(row: RowMapping) -> DeviceRecord:
    return DeviceRecord(
        hash=row["hash"],
        device_id=row["device_id"],
        parent=row["parent"],
        size=row["size"],
        transaction_id=row["transaction_id"],
        state=DeviceState(row["state"]),
        mount_count=row["mount_count"],
        mount_path=row["mount_path"],
    )
