"""Helpers of the devicemapper tests: small options, and what a test leaves on the host."""

from __future__ import annotations

import contextlib

from drivers.commands import QUICK, run
from drivers.errors import HostError
from drivers.mounts import mounted_under
from drivers.storage.devicemapper import DevicemapperDriver, DevicemapperOptions, dmsetup, losetup
from drivers.storage.devicemapper.config import GiB, MiB
from drivers.storage.devicemapper.layout import Layout

#: Small, because the VM's disk writes live in its RAM.
SMALL = DevicemapperOptions(data_loop_size=1 * GiB, metadata_loop_size=64 * MiB, base_size=64 * MiB)


def release_all(driver: DevicemapperDriver) -> None:
    """Put every mount a test left, so that the pool can go down."""
    for device in driver.devices.list_devices():
        for _ in range(device.mount_count):
            driver.put(device.hash)


def our_dm_devices(layout: Layout) -> list[str]:
    return [d.name for d in dmsetup.ls() if d.name.startswith(layout.prefix + "-")]


def host_leftovers(layout: Layout) -> list[str]:
    """What of this root is still on the host: dm devices, loop devices, mounts."""
    found = our_dm_devices(layout)
    for path in (layout.data_file, layout.metadata_file):
        found += [f"{loop} ({path})" for loop in losetup.find(path)]
    found += [f"mount {m}" for m in mounted_under(layout.root)]
    return found


def force_clean(layout: Layout) -> None:
    """Tear down whatever a failed test left, so the next test starts from a clean host."""
    for mount_point in sorted(mounted_under(layout.root), reverse=True):
        with contextlib.suppress(HostError):
            run(["umount", "-l", mount_point], timeout=QUICK)
    names = our_dm_devices(layout)
    for name in sorted(names, key=lambda n: n == layout.loop_pool_name):  # the pool last
        with contextlib.suppress(HostError):
            dmsetup.resume(name)
        with contextlib.suppress(HostError):
            dmsetup.remove(name)
    for path in (layout.data_file, layout.metadata_file):
        with contextlib.suppress(HostError):
            losetup.detach_all(path)


def assert_consistent(driver: DevicemapperDriver) -> None:
    """``exists``, ``layers``, ``status`` and the records agree with ``dmsetup ls``."""
    layout = driver.devices.layout
    records = driver.devices.list_devices()
    status = dict(driver.status())
    active_in_kernel = {layout.hash_of(n) for n in our_dm_devices(layout)} - {None}
    active_in_db = {d.hash for d in records if d.state == "active"}
    assert active_in_kernel == active_in_db
    assert status["Active devices"] == str(len(active_in_kernel))
    assert status["Device count"] == str(len(records)) == str(len(driver.layers()) + 1)
    assert all(d.state in ("created", "active") for d in records), records
    for layer in driver.layers():
        assert driver.exists(layer)
    pool = driver.devices._pool()
    assert status["Pool Transaction Id"] == str(pool.transaction_id)
    assert pool.open_transaction is None
