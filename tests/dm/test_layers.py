"""Layers as thin snapshots, in the spirit of Docker's graphdriver test suite."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from drivers.mounts import is_mounted
from drivers.storage.devicemapper import DevicemapperDriver, dmsetup
from drivers.storage.devicemapper.config import MiB
from tests.dm.helpers import assert_consistent

pytestmark = pytest.mark.dm

# path -> (mode, uid, gid); directories end with "/"
TREE = {
    "etc/": (0o755, 0, 0),
    "etc/passwd": (0o644, 0, 0),
    "etc/shadow": (0o640, 0, 42),
    "bin/": (0o755, 0, 0),
    "bin/su": (0o4755, 0, 0),
    "home/user/": (0o700, 1000, 1000),
    "home/user/notes": (0o600, 1000, 1000),
    "tmp/": (0o1777, 0, 0),
}


def write_tree(rootfs: Path) -> None:
    for path, (mode, uid, gid) in TREE.items():
        target = rootfs / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_text(f"content of {path}\n")
        os.chown(target, uid, gid)
        os.chmod(target, mode)
    (rootfs / "bin/sh").symlink_to("busybox")
    os.link(rootfs / "etc/passwd", rootfs / "etc/passwd-")


def assert_tree(rootfs: Path) -> None:
    for path, (mode, uid, gid) in TREE.items():
        info = (rootfs / path).lstat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, uid, gid), path
        if not path.endswith("/"):
            assert (rootfs / path).read_text() == f"content of {path}\n"
    assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert (rootfs / "etc/passwd").stat().st_ino == (rootfs / "etc/passwd-").stat().st_ino


def test_empty_layer_is_an_empty_filesystem(driver: DevicemapperDriver) -> None:
    assert_status_reads_like_docker_info(driver)
    driver.create("empty", None)
    assert driver.exists("empty") and driver.layers() == ["empty"]
    rootfs = Path(driver.get("empty"))
    mount_point = rootfs.parent
    assert rootfs == Path(driver.devices.layout.mount_path("empty")) / "rootfs"
    assert sorted(os.listdir(mount_point)) == ["id", "lost+found", "rootfs"]
    assert (mount_point / "id").read_text() == "empty"
    assert os.listdir(rootfs) == []
    assert_consistent(driver)
    driver.put("empty")
    assert not is_mounted(str(mount_point))
    assert_consistent(driver)


def test_snapshot_has_parent_files_and_its_writes_stay_its_own(driver: DevicemapperDriver) -> None:
    driver.create("image", None)
    image_rootfs = Path(driver.get("image"))
    write_tree(image_rootfs)
    # Snapshot while the parent is mounted: the parent is suspended around create_snap.
    driver.create("container", "image")
    assert_consistent(driver)
    (image_rootfs / "after-snapshot").write_text("parent only")  # the parent still works
    container_rootfs = Path(driver.get("container"))
    assert_tree(container_rootfs)
    assert not (container_rootfs / "after-snapshot").exists()
    (container_rootfs / "etc/passwd").write_text("changed in the container\n")
    (container_rootfs / "new-file").write_text("container only")
    assert (image_rootfs / "etc/passwd").read_text() == "content of etc/passwd\n"
    assert not (image_rootfs / "new-file").exists()
    assert_consistent(driver)
    driver.put("container")
    driver.put("image")
    assert_consistent(driver)


def test_chain_of_20_snapshots_reads_the_first_layer_and_removes_in_any_order(
    driver: DevicemapperDriver,
) -> None:
    driver.create("layer0", None)
    rootfs = Path(driver.get("layer0"))
    (rootfs / "first").write_text("from layer 0")
    driver.put("layer0")
    for n in range(1, 21):
        driver.create(f"layer{n}", f"layer{n - 1}")
    assert_consistent(driver)
    top = Path(driver.get("layer20"))
    assert (top / "first").read_text() == "from layer 0"
    driver.put("layer20")
    order = [f"layer{n}" for n in range(21)]
    random.Random(7).shuffle(order)
    for position, layer in enumerate(order):
        driver.remove(layer)
        assert not driver.exists(layer)
        if position % 10 == 0:
            assert_consistent(driver)
    assert driver.layers() == []
    assert_consistent(driver)
    assert not os.listdir(driver.devices.layout.mnt_dir)


def test_mounts_are_refcounted(driver: DevicemapperDriver) -> None:
    driver.create("layer", None)
    dm_name = driver.devices.layout.device_name("layer")
    first = driver.get("layer")
    second = driver.get("layer")
    assert first == second
    assert driver.devices.get_device("layer").mount_count == 2  # type: ignore[union-attr]
    driver.put("layer")
    assert is_mounted(str(Path(first).parent)) and dmsetup.info(dm_name) is not None
    driver.put("layer")
    assert not is_mounted(str(Path(first).parent)) and dmsetup.info(dm_name) is None
    driver.put("layer")  # a put without a get does nothing
    record = driver.devices.get_device("layer")
    assert record is not None and (record.state, record.mount_count) == ("created", 0)
    assert_consistent(driver)


def test_larger_layer_gets_a_grown_filesystem(driver: DevicemapperDriver) -> None:
    driver.create("small", None)
    driver.create("big", "small", size=128 * MiB)
    rootfs = driver.get("big")
    fs = os.statvfs(rootfs)
    assert fs.f_blocks * fs.f_frsize > 100 * MiB
    driver.put("big")
    assert_consistent(driver)


def assert_status_reads_like_docker_info(driver: DevicemapperDriver) -> None:
    status = dict(driver.status())
    assert status["Pool Name"] == driver.devices.pool_name
    assert status["Pool Blocksize"] == "65.54kB"
    assert status["Base Device Size"] == "67.11MB"
    assert status["Backing Filesystem"] == "ext4"
    assert status["Data file"].startswith("/dev/loop")
    assert status["Data loop file"].endswith("devicemapper/data")
    assert status["Data Space Total"] == "1.074GB"
    for key in (
        "Data Space Used",
        "Data Space Available",
        "Metadata Space Used",
        "Metadata Space Total",
        "Metadata Space Available",
        "Thin Pool Minimum Free Space",
        "Device count",
    ):
        assert status[key], key
