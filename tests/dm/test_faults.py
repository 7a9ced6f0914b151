"""Bad input and host faults: clear errors, and nothing leaked on the host or in the records."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from drivers.commands import QUICK, run
from drivers.errors import DeviceBusy, HostError, NoSuchDevice, NotEnoughSpace
from drivers.mounts import is_mounted
from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions, dmsetup, losetup
from drivers.storage.devicemapper.config import GiB, MiB
from drivers.storage.devicemapper.layout import layout_for
from drivers.storage.devicemapper.status import human_size
from fsm.store.thin import SQLDeviceMetadataStore
from models.thin import ThinDevice
from tests.dm.helpers import (
    SMALL,
    assert_consistent,
    force_clean,
    host_leftovers,
    our_dm_devices,
    release_all,
)

pytestmark = pytest.mark.dm


def test_unknown_parent_or_smaller_size_is_refused_before_side_effects(
    driver: DevicemapperDriver,
) -> None:
    before = our_dm_devices(driver.devices.layout)
    with pytest.raises(NoSuchDevice, match="parent layer 'nope' does not exist"):
        driver.create("child", "nope")
    driver.create("parent", None)
    with pytest.raises(HostError, match="smaller than its parent") as caught:
        driver.create("child", "parent", size=32 * MiB)
    assert caught.value.errno == errno.EINVAL
    assert driver.layers() == ["parent"]
    assert our_dm_devices(driver.devices.layout) == before
    assert_consistent(driver)


def test_busy_layer_is_neither_removed_nor_unmounted(driver: DevicemapperDriver) -> None:
    driver.create("layer", None)
    rootfs = Path(driver.get("layer"))
    with open(rootfs / "held-open", "w") as held:
        with pytest.raises(DeviceBusy):
            driver.remove("layer")
        with pytest.raises(DeviceBusy):
            driver.put("layer")
        record = driver.devices.get_device("layer")
        assert record is not None and (record.state, record.mount_count) == ("active", 1)
        assert is_mounted(str(rootfs.parent))
        assert_consistent(driver)
        held.write("closing now")
    driver.remove("layer")
    assert not driver.exists("layer") and not is_mounted(str(rootfs.parent))
    assert_consistent(driver)


def test_pool_below_min_free_space_refuses_snapshots(
    root: Path, store: SQLDeviceMetadataStore
) -> None:
    options = DevicemapperOptions(
        data_loop_size=64 * MiB,
        metadata_loop_size=16 * MiB,
        base_size=32 * MiB,
        min_free_space=99,
    )
    driver = DevicemapperDriver(root, store, options)
    try:
        with pytest.raises(HostError, match="min_free_space=99") as caught:
            driver.create("layer", None)
        assert caught.value.errno == errno.ENOSPC
        assert driver.layers() == []
    finally:
        driver.shutdown_pool()


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, remounted larger by the tests that need a pool to fit."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mount_point)], timeout=QUICK)
    try:
        yield mount_point
    finally:
        run(["umount", str(mount_point)], timeout=QUICK)


@pytest.mark.parametrize(
    "min_free_space", [0, 10], ids=["fails-while-setting-up", "refused-before-setting-up"]
)
def test_pool_files_on_a_full_filesystem_fail_cleanly(
    small_tmpfs: Path, store: SQLDeviceMetadataStore, min_free_space: int
) -> None:
    root = small_tmpfs / "root"
    options = dataclasses.replace(SMALL, min_free_space=min_free_space)
    expected = NotEnoughSpace if min_free_space else HostError
    with pytest.raises(expected):
        DevicemapperDriver(root, store, options)
    layout = layout_for(root)
    assert host_leftovers(layout) == []
    assert store.load_pool(layout.loop_pool_name) is None
    assert not os.path.exists(layout.data_file) and not os.path.exists(layout.metadata_file)


def test_layer_is_refused_when_the_loop_files_filesystem_is_short(
    small_tmpfs: Path, engine: Engine, store: SQLDeviceMetadataStore
) -> None:
    # Room for the pool (min_free_space=10% of 272 MiB is 27.2 MiB), which a filler then takes.
    run(["mount", "-o", "remount,size=96M", str(small_tmpfs)], timeout=QUICK)
    options = DevicemapperOptions(
        data_loop_size=256 * MiB, metadata_loop_size=16 * MiB, base_size=32 * MiB
    )
    driver = DevicemapperDriver(small_tmpfs / "root", store, options)
    filler = small_tmpfs / "filler"
    try:
        fs = os.statvfs(small_tmpfs)
        with open(filler, "wb") as file:
            os.posix_fallocate(file.fileno(), 0, fs.f_bavail * fs.f_frsize - 8 * MiB)
        name = driver.devices.pool_name
        dm_before = sorted(info.name for info in dmsetup.ls())
        pool_before = store.load_pool(name)
        kernel_id_before = dmsetup.pool_status(name).transaction_id

        with pytest.raises(NotEnoughSpace) as caught:
            driver.create("layer", None)

        error = caught.value
        assert error.errno == errno.ENOSPC and error.min_free_space == 10
        assert error.free <= 8 * MiB < error.wanted
        assert f"the filesystem holding the pool's sparse loop files ({small_tmpfs}" in str(error)
        assert f"has {human_size(error.free)} free" in str(error)
        assert "min_free_space=10%" in str(error)
        assert sorted(info.name for info in dmsetup.ls()) == dm_before
        with engine.connect() as conn:
            assert conn.execute(select(ThinDevice.hash)).scalars().all() == ["base"]
        assert store.load_pool(name) == pool_before
        assert dmsetup.pool_status(name).transaction_id == kernel_id_before
        status = dict(driver.status())
        assert status["Loop Filesystem Available"] == human_size(error.free)
        assert_consistent(driver)

        os.remove(filler)  # the filesystem, not the pool, was short
        driver.create("layer", None)
        assert driver.layers() == ["layer"]
    finally:
        filler.unlink(missing_ok=True)
        release_all(driver)
        driver.shutdown_pool()


def test_base_filesystem_mismatch_is_a_clear_error(
    driver: DevicemapperDriver, root: Path, store: SQLDeviceMetadataStore
) -> None:
    store.set_base_fs_uuid(driver.devices.pool_name, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(HostError, match="not the one the database describes"):
        DevicemapperDriver(root, store, SMALL)


def test_existing_pool_must_be_empty_and_is_left_up(
    tmp_path: Path, root: Path, store: SQLDeviceMetadataStore
) -> None:
    data, metadata = tmp_path / "pool-data", tmp_path / "pool-meta"
    for path, size in ((data, 1 * GiB), (metadata, 16 * MiB)):
        with open(path, "wb") as file:
            file.truncate(size)
    data_loop, meta_loop = losetup.attach(str(data)), losetup.attach(str(metadata))
    name = f"berth-test-{os.getpid()}-pool"
    pool_device = f"/dev/mapper/{name}"
    try:
        dmsetup.create(name, dmsetup.thin_pool_table(meta_loop, data_loop, GiB // 512, 128))
        dmsetup.create_thin(pool_device, 1)
        dmsetup.set_transaction_id(pool_device, 0, 1)
        options = DevicemapperOptions(thin_pool_device=pool_device, base_size=64 * MiB)
        with pytest.raises(HostError, match="is not empty"):
            DevicemapperDriver(root, store, options)
        assert store.load_pool(name) is None

        dmsetup.delete(pool_device, 1)  # empty again: no device, transaction id 0
        dmsetup.set_transaction_id(pool_device, 1, 0)
        driver = DevicemapperDriver(root, store, options)
        driver.create("layer", None)
        assert Path(driver.get("layer")).is_dir()
        driver.put("layer")
        assert_consistent(driver)
        driver.shutdown_pool()
        assert dmsetup.info(name) is not None  # not berth's to take down
    finally:
        force_clean(layout_for(root))  # our thin devices first: they hold the pool open
        if dmsetup.info(name) is not None:
            dmsetup.remove(name)
        losetup.detach(data_loop)
        losetup.detach(meta_loop)
