"""Bad input and host faults: clear errors, and nothing leaked on the host or in the records."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from drivers.commands import QUICK, run
from drivers.errors import DeviceBusy, HostError, NoSuchDevice
from drivers.mounts import is_mounted
from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions, dmsetup, losetup
from drivers.storage.devicemapper.config import GiB, MiB
from drivers.storage.devicemapper.layout import layout_for
from fsm.store.thin import SQLDeviceMetadataStore
from tests.dm.helpers import (
    SMALL,
    assert_consistent,
    force_clean,
    host_leftovers,
    our_dm_devices,
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


def test_pool_files_on_a_full_filesystem_fail_cleanly(
    tmp_path: Path, store: SQLDeviceMetadataStore
) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(tiny)], timeout=QUICK)
    try:
        root = tiny / "root"
        with pytest.raises(HostError):
            DevicemapperDriver(root, store, SMALL)
        layout = layout_for(root)
        assert host_leftovers(layout) == []
        assert store.load_pool(layout.loop_pool_name) is None
        assert not os.path.exists(layout.data_file) and not os.path.exists(layout.metadata_file)
    finally:
        run(["umount", str(tiny)], timeout=QUICK)


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
