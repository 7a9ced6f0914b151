"""Fixtures for the devicemapper tests: a real thin pool on small sparse loop files, a fresh
SQLite database for its records, and a teardown that proves the host is left clean.

These tests need root and the kernel's dm-thin target; here they run inside the test VM:
``python tests/vm/run.py --cwd /work/main -- python3 -m pytest -m dm tests/dm -x -q``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event

from drivers.commands import QUICK, run
from drivers.errors import HostError
from drivers.storage.devicemapper import DevicemapperDriver, dmsetup
from drivers.storage.devicemapper.layout import layout_for
from fsm.store.thin import SQLDeviceMetadataStore
from models.base import Base
from models.thin import ThinDevice, ThinPool
from tests.dm.helpers import SMALL, force_clean, host_leftovers, release_all


def dm_thin_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (loop devices, device-mapper, mounts)"
    with contextlib.suppress(HostError):
        run(["modprobe", "dm_thin_pool"], timeout=QUICK)
    with open("/proc/misc", encoding="utf-8") as misc:
        if "device-mapper" not in misc.read():
            return "kernel has no device-mapper (/proc/misc); run in tests/vm/run.py"
    try:
        if "thin-pool" not in dmsetup.targets():
            return "kernel has no dm-thin target (dmsetup targets); run in tests/vm/run.py"
    except HostError as exc:
        return f"dmsetup targets failed: {exc}"
    return None


@pytest.fixture(scope="session")
def dm_thin() -> None:
    reason = dm_thin_missing()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_dm_thin(dm_thin: None) -> None:
    """Every test here needs dm-thin: skip them all, with one reason, when it is missing."""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'berth.db'}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA journal_mode=WAL")

    Base.metadata.create_all(engine, tables=[ThinPool.__table__, ThinDevice.__table__])
    return engine


@pytest.fixture
def store(engine: Engine) -> SQLDeviceMetadataStore:
    return SQLDeviceMetadataStore(engine)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    yield root
    leftovers = host_leftovers(layout_for(root))
    if leftovers:
        force_clean(layout_for(root))
    assert leftovers == [], f"the test left these on the host: {leftovers}"


@pytest.fixture
def driver(root: Path, store: SQLDeviceMetadataStore) -> Iterator[DevicemapperDriver]:
    driver = DevicemapperDriver(root, store, SMALL)
    yield driver
    release_all(driver)
    driver.shutdown_pool()
