"""A process killed at a crash point; a fresh DeviceSet on the same root and database must
reconcile what it left: roll back an uncommitted pool transaction, complete a committed one,
undo a mount nobody was told about."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from drivers.errors import NoSuchDevice
from drivers.mounts import mounted_under
from drivers.storage.devicemapper import DevicemapperDriver, dmsetup
from fsm.store.thin import SQLDeviceMetadataStore
from tests.dm.helpers import SMALL, assert_consistent, our_dm_devices

pytestmark = pytest.mark.dm

REPO = Path(__file__).resolve().parents[2]


def crash(root: Path, engine: Engine, point: str, *args: str) -> None:
    database = engine.url.database
    assert database is not None
    env = {**os.environ, "BERTH_CRASH_AT": point, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.dm.crash_child", str(root), database, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def restart(root: Path, store: SQLDeviceMetadataStore) -> DevicemapperDriver:
    return DevicemapperDriver(root, store, SMALL)


def test_crash_between_create_snap_and_commit_rolls_back(
    driver: DevicemapperDriver, root: Path, engine: Engine, store: SQLDeviceMetadataStore
) -> None:
    driver.create("parent", None)
    driver.get("parent")  # an active origin: the crash also leaves it suspended
    crash(root, engine, "dm.after_create_snap", "create", "child", "parent")
    pool = store.load_pool(driver.devices.pool_name)
    assert pool is not None and pool.open_transaction is not None
    lost_id = pool.open_transaction.device_id
    assert store.get_device(pool.name, "child") is not None  # the row the crash left

    again = restart(root, store)
    pool = store.load_pool(pool.name)
    assert pool is not None and pool.open_transaction is None
    assert pool.transaction_id == dmsetup.pool_status(pool.name).transaction_id
    assert not again.exists("child") and again.layers() == ["parent"]
    with pytest.raises(NoSuchDevice):  # the half-made thin id is gone from the pool
        dmsetup.delete(pool.pool_device, lost_id)
    owned = {again.devices.layout.device_name(d.hash) for d in again.devices.list_devices()}
    assert set(our_dm_devices(again.devices.layout)) - {pool.name} <= owned
    assert not any(d.suspended for d in dmsetup.ls() if d.name in owned)
    parent_rootfs = Path(driver.get("parent"))  # mounted twice now
    (parent_rootfs / "still-writable").write_text("yes")
    driver.put("parent")
    again.create("child", "parent")  # the id and the hash are usable again
    assert_consistent(again)


def test_crash_after_the_kernel_committed_completes_the_transaction(
    driver: DevicemapperDriver, root: Path, engine: Engine, store: SQLDeviceMetadataStore
) -> None:
    driver.create("parent", None)
    crash(root, engine, "dm.after_set_transaction_id", "create", "child", "parent")
    again = restart(root, store)
    pool = store.load_pool(again.devices.pool_name)
    assert pool is not None and pool.open_transaction is None
    assert pool.transaction_id == dmsetup.pool_status(pool.name).transaction_id
    assert again.exists("child")
    rootfs = again.get("child")
    assert os.path.isdir(rootfs)
    again.put("child")
    assert_consistent(again)


def test_crash_after_mount_is_undone(
    driver: DevicemapperDriver, root: Path, engine: Engine, store: SQLDeviceMetadataStore
) -> None:
    driver.create("layer", None)
    crash(root, engine, "dm.after_mount", "get", "layer")
    assert mounted_under(str(root))  # mounted, but nobody was given the path
    again = restart(root, store)
    assert mounted_under(str(root)) == []
    record = again.devices.get_device("layer")
    assert record is not None and (record.state, record.mount_count) == ("created", 0)
    assert_consistent(again)
