"""The host's image suite (``tests/test_images.py``: every source, the tree equal to Podman's,
whiteouts, opaque directories, hard links, setuid, symlinks, users, crash points) again on
devicemapper. The guest's CPU is emulated, so this takes longer than CI's VM run may: it is run
by hand, in the VM::

    python tests/vm/run.py --memory 4096 --timeout 3000 --cwd /work/main -- \\
        python3 -m pytest -m dm_images tests/dm/test_image_suite.py -q -p no:cacheprovider

(SQLite only: the PostgreSQL runs of the same tests are the host's.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.storage.devicemapper import DevicemapperDriver
from fsm import Orchestrator
from tests.conftest import known_container_ids
from tests.dm.conftest import dm_thin_missing
from tests.dm.helpers import release_all
from tests.dm.test_images import SMALL_POOL
from tests.hostcheck import assert_nothing_leaked

if dm_thin_missing() is not None:
    # before the suite's module fixtures export and push the test image for nothing
    pytest.skip(str(dm_thin_missing()), allow_module_level=True)

from tests.test_images import *  # noqa: F403 - the suite, collected again here

pytestmark = [pytest.mark.dm_images, pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def storage() -> str:
    return "devicemapper"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'berth.db'}"


@pytest.fixture(autouse=True)
def _pool_options_for_crashed_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    # the crash tests' processes open the same small pool (tests/crash_driver.py reads it)
    monkeypatch.setenv("BERTH_STORAGE_OPTIONS", json.dumps(SMALL_POOL))


@pytest.fixture
def orc(database_url: str, root: Path) -> Iterator[Orchestrator]:
    orchestrator = Orchestrator(database_url=database_url, root=root, storage="devicemapper",
                                storage_options=SMALL_POOL)
    yield orchestrator
    for container in orchestrator.list(all=True):
        orchestrator.remove(container.id, force=True)
    driver = orchestrator.storage
    assert isinstance(driver, DevicemapperDriver)
    release_all(driver)
    driver.shutdown_pool()  # the pool's loop devices go too
    seen = known_container_ids(orchestrator)
    orchestrator.close()
    assert_nothing_leaked(root, seen)


@pytest.mark.skip(reason="the CLI takes no devicemapper options: its pool would be the default "
                         "100 GB of sparse files, more than the VM's tmpfs keeps free")
def test_the_cli_pulls_loads_lists_runs_inspects_and_removes() -> None:
    """Runs on the host's drivers (tests/test_images.py)."""
