"""Layered images on a real dm-thin pool: two OCI layouts sharing their two lower layers are
loaded onto one thin device per distinct layer, each a snapshot of the one below; a container's
device is a snapshot of its image's top layer and shows the merged tree, whiteouts applied.
Removing everything, or killing a load or a create (``BERTH_CRASH_AT``) and recovering, leaves
the pool with its base device only: in ``thin_devices``, in ``dmsetup`` and in the pool's own
metadata (probed by activating each thin id)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.errors import HostError
from drivers.storage.devicemapper import BASE_HASH, DevicemapperDriver, dmsetup
from drivers.storage.devicemapper.config import MiB
from fsm import Orchestrator
from fsm.images.chain import chain_ids
from fsm.info import ImageInfo
from tests import handmade_layouts as made
from tests.dm.helpers import our_dm_devices, release_all

pytestmark = pytest.mark.dm

REPO = Path(__file__).resolve().parents[2]
SMALL_POOL = {"data_loop_size": "1G", "metadata_loop_size": "64M", "base_size": "64M"}
PROBE = "berth-test-probe"


# -- the images ------------------------------------------------------------------------------


def _layouts(directory: Path) -> tuple[Path, Path]:
    """Image a and image b: the same two lower layers (byte for byte, so the same chain IDs),
    each its own top layer; a's top whites out a file of layer 1."""
    lower = [made.layer(made.directory("etc"), made.file("etc/one", b"layer 1"),
                        made.file("etc/doomed", b"only b keeps me")),
             made.layer(made.directory("usr"), made.file("usr/two", b"layer 2"))]
    a = made.write_layout(directory / "a", [*lower, made.layer(
        made.file("a-only", b"layer 3a"), made.file("etc/.wh.doomed", b""))], name="localhost/a:1")
    b = made.write_layout(directory / "b", [*lower, made.layer(
        made.file("b-only", b"layer 3b"))], name="localhost/b:1")
    return a, b


@pytest.fixture
def layouts(tmp_path: Path) -> tuple[Path, Path]:
    return _layouts(tmp_path / "layouts")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'berth.db'}"


def _open(root: Path, database_url: str) -> Orchestrator:
    return Orchestrator(database_url=database_url, root=root, storage="devicemapper",
                        storage_options=SMALL_POOL)


@pytest.fixture
def orc(root: Path, database_url: str) -> Iterator[Orchestrator]:
    orc = _open(root, database_url)
    yield orc
    driver = orc.storage
    assert isinstance(driver, DevicemapperDriver)
    release_all(driver)
    driver.shutdown_pool()
    orc.close()


# -- what the pool holds, three ways ---------------------------------------------------------


def _rows(database_url: str, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
        return conn.execute(query).fetchall()


def thin_rows(database_url: str) -> dict[str, tuple[int, str | None, str]]:
    """``thin_devices``: hash -> (device_id, parent, state)."""
    return {str(h): (int(str(i)), None if p is None else str(p), str(s)) for h, i, p, s in
            _rows(database_url, "SELECT hash, device_id, parent, state FROM thin_devices")}


def layer_rows(database_url: str) -> dict[str, tuple[str, str | None, str]]:
    """``layers``: id -> (kind, parent, state)."""
    return {str(i): (str(k), None if p is None else str(p), str(s)) for i, k, p, s in
            _rows(database_url, "SELECT id, kind, parent, state FROM layers")}


def pool_device(orc: Orchestrator) -> str:
    driver = orc.storage
    assert isinstance(driver, DevicemapperDriver)
    return dmsetup.device_path(driver.devices.pool_name)


def kernel_thin_ids(pool: str, below: int) -> set[int]:
    """The thin ids under ``below`` that the pool's own metadata holds: a thin target of an id
    the pool does not have fails to load (ENODATA), one it has comes up (and goes again)."""
    found = set()
    for device_id in range(below):
        try:
            dmsetup.create(PROBE, dmsetup.thin_table(pool, device_id, 1 * MiB))
        except HostError:
            continue
        dmsetup.remove(PROBE)
        found.add(device_id)
    assert dmsetup.info(PROBE) is None
    return found


def assert_pool_holds(orc: Orchestrator, database_url: str, hashes: set[str]) -> None:
    """``thin_devices`` has exactly ``hashes`` (and the base), all usable; the kernel's pool
    has exactly their thin ids (and none of the next two); its transaction id is the
    database's; no device of ours but the pool is active (nothing is mounted between
    operations)."""
    driver = orc.storage  # opened (the pool made) on first use
    rows = thin_rows(database_url)
    assert set(rows) == hashes | {BASE_HASH}, sorted(rows)
    assert all(state == "created" for _, _, state in rows.values()), rows
    ids = {device_id for device_id, _, _ in rows.values()}
    assert kernel_thin_ids(pool_device(orc), max(ids) + 3) == ids
    assert isinstance(driver, DevicemapperDriver)
    name = driver.devices.pool_name
    (pool_transaction,) = _rows(database_url,
                                f"SELECT transaction_id FROM thin_pools WHERE name = '{name}'")
    assert dmsetup.pool_status(name).transaction_id == pool_transaction[0]
    assert our_dm_devices(driver.devices.layout) == [name]


def layers_of(image: ImageInfo) -> list[str]:
    return chain_ids(image.config["rootfs"]["diff_ids"])


# -- 1 and 2: load, create, look, remove -----------------------------------------------------


def _tree(rootfs: str) -> dict[str, bytes]:
    found = {}
    for directory, _, files in os.walk(rootfs):
        for name in files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, rootfs)] = Path(path).read_bytes()
    return found


def test_two_images_share_their_lower_thin_devices_and_leave_only_the_base(
        orc: Orchestrator, database_url: str, layouts: tuple[Path, Path]) -> None:
    started = time.monotonic()
    (a,) = orc.load(layouts[0])
    (b,) = orc.load(layouts[1])
    print(f"two loads: {time.monotonic() - started:.1f}s")
    assert (a.storage_driver, b.storage_driver) == ("devicemapper", "devicemapper")
    chain_a, chain_b = layers_of(a), layers_of(b)
    assert chain_a[:2] == chain_b[:2] and chain_a[2] != chain_b[2]
    assert (a.top_layer, b.top_layer) == (chain_a[2], chain_b[2])
    ca = orc.create(a.name, network_mode="none")
    cb = orc.create(b.name, network_mode="none")

    # one thin device per distinct layer (2 + 1 + 1), one per container, the base
    distinct = set(chain_a) | set(chain_b)
    assert len(distinct) == 4
    assert_pool_holds(orc, database_url, distinct | {ca.id, cb.id})
    rows = thin_rows(database_url)
    assert len(rows) == 7
    # each a snapshot of the layer below (the first of the base); a container of its top
    for chain in (chain_a, chain_b):
        assert [rows[layer][1] for layer in chain] == [BASE_HASH, *chain[:-1]]
    assert rows[ca.id][1] == a.top_layer and rows[cb.id][1] == b.top_layer
    assert layer_rows(database_url) == {
        chain_a[0]: ("image", None, "ready"), chain_a[1]: ("image", chain_a[0], "ready"),
        chain_a[2]: ("image", chain_a[1], "ready"), chain_b[2]: ("image", chain_b[1], "ready"),
        ca.id: ("container", a.top_layer, "ready"), cb.id: ("container", b.top_layer, "ready")}

    # the data: every layer of its image, the whiteout only in a's
    layer_files = {"etc/one": b"layer 1", "usr/two": b"layer 2"}
    for container, own, doomed in ((ca, {"a-only": b"layer 3a"}, False),
                                    (cb, {"b-only": b"layer 3b"}, True)):
        rootfs = orc.storage.get(container.id)
        try:
            device_id = rows[container.id][0]
            name = orc.storage.devices.layout.device_name(container.id)  # type: ignore[attr-defined]
            table = dmsetup.table(name).split()
            assert table[2] == "thin" and table[4] == str(device_id), table  # mounted: active
            assert os.path.ismount(os.path.dirname(rootfs))
            expected = {**layer_files, **own}
            if doomed:
                expected["etc/doomed"] = b"only b keeps me"
            assert _tree(rootfs) == expected
        finally:
            orc.storage.put(container.id)

    orc.remove(ca.id)
    orc.remove(cb.id)
    assert set(thin_rows(database_url)) == distinct | {BASE_HASH}
    orc.remove_image(a.name)
    assert set(thin_rows(database_url)) == set(chain_b) | {BASE_HASH}  # shared ones stay for b
    orc.remove_image(b.name)
    assert_pool_holds(orc, database_url, set())
    assert layer_rows(database_url) == {}
    assert orc.images() == []
    print(f"load, create, check, remove: {time.monotonic() - started:.1f}s")


# -- 3: killed, then recovered ---------------------------------------------------------------


def _crash(root: Path, database_url: str, operation: str, argument: str, point: str) -> None:
    env = {**os.environ, "BERTH_CRASH_AT": point, "BERTH_STORAGE": "devicemapper",
           "BERTH_STORAGE_OPTIONS": json.dumps(SMALL_POOL), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", str(root), database_url, operation,
         argument], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, (
        f"{operation} did not die at {point}: exit {result.returncode}\n{result.stderr}")


def test_a_killed_load_or_create_leaves_no_thin_device_after_recover(
        orc: Orchestrator, root: Path, database_url: str, layouts: tuple[Path, Path]) -> None:
    """Each crash on the same pool, one after the other; recovery by the orchestrator that
    stayed open meanwhile (a long-lived API user), whose driver must settle the pool
    transaction the dead process left open at ``dm.after_set_transaction_id``."""
    a_layout, b_layout = (str(layout) for layout in layouts)
    kept: set[str] = set()
    assert_pool_holds(orc, database_url, kept)  # the pool and its base are made here
    clock = time.monotonic()

    def crash_and_recover(operation: str, argument: str, point: str) -> None:
        nonlocal clock
        _crash(root, database_url, operation, argument, point)
        left = set(thin_rows(database_url)) - kept - {BASE_HASH}
        assert left, f"{operation} killed at {point} left no thin device: nothing was tested"
        crashed = time.monotonic()
        report = orc.recover()
        assert set(report.get("layers", [])) == left, (point, report)
        assert_pool_holds(orc, database_url, kept)
        assert set(layer_rows(database_url)) == kept
        assert orc.list(all=True) == []
        now = time.monotonic()
        print(f"{operation} killed at {point}: {len(left)} left; crash {crashed - clock:.1f}s, "
              f"recover {now - crashed:.1f}s")
        clock = now

    crash_and_recover("load", a_layout, "layer.after_create")
    crash_and_recover("load", a_layout, "image.before_commit")
    (a,) = orc.load(Path(a_layout))
    kept = set(layers_of(a))
    crash_and_recover("load", b_layout, "dm.after_set_transaction_id")  # b's own top layer
    crash_and_recover("create", a.name, "layer.after_create")
    crash_and_recover("create", a.name, "dm.after_set_transaction_id")  # the issue's `run`
    orc.remove_image(a.name)
    kept = set()
    assert_pool_holds(orc, database_url, kept)
    assert layer_rows(database_url) == {}
