"""Fixtures that build real things: a busybox image tarball from Debian's busybox-static, a
SQLite file or a real PostgreSQL server, and orchestrators on a private data root."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsm.cli.demo import build_busybox_tar
from tests.hostcheck import assert_nothing_leaked
from tests.oci_images import BuiltImage, Registry, build_test_image, missing_tools
from tests.postgres_server import PostgresServer, start_server


def pytest_collection_finish(session: pytest.Session) -> None:
    """Boot the device-mapper VM in the background when its test is going to run."""
    if any(item.nodeid.startswith("tests/test_dm_in_vm.py") for item in session.items):
        from tests.dm_suite import SUITE, vm_needed

        if vm_needed() is None:
            SUITE.start()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    not_root = os.geteuid() != 0
    for item in items:
        if not_root and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root (netns, runc, mounts)"))


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root filesystem tarball: /bin/busybox from busybox-static and its applet links."""
    if shutil.which("busybox") is None:
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    return build_busybox_tar(tmp_path_factory.mktemp("images") / "busybox.tar")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = start_server()
    if server is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    yield server
    server.stop()


_database_numbers = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that touches the database runs on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'berth.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"berth_test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


def known_container_ids(orchestrator: object) -> set[str]:
    """Every container this orchestrator's database has seen, removed ones included."""
    return {e.container_id for e in orchestrator.events()}  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def host_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The driver berth picks on a host without dm-thin (the VM's tests cover devicemapper):
    overlay where the kernel and the test directory's filesystem can stack it, else vfs."""
    from drivers.storage.overlay import overlay_unsupported

    why_not = overlay_unsupported(tmp_path_factory.mktemp("overlay-check"))
    return "vfs" if why_not else "overlay"


@pytest.fixture
def storage(host_storage: str) -> str:
    """The storage driver of ``orc``; a module overrides it to run on several."""
    return host_storage


@pytest.fixture
def orc(database_url: str, root: Path, storage: str) -> Iterator[object]:
    yield from orchestrator_on(database_url, root, storage)


def orchestrator_on(database_url: str, root: Path, storage: str) -> Iterator[object]:
    """An orchestrator for one test; afterwards its containers go and nothing may be left."""
    from fsm import Orchestrator

    orchestrator = Orchestrator(database_url=database_url, root=root, storage=storage)
    assert orchestrator.storage.name == storage
    yield orchestrator
    for container in orchestrator.list(all=True):
        try:
            orchestrator.remove(container.id, force=True)
        except Exception:
            pass
    seen = known_container_ids(orchestrator)
    orchestrator.close()
    assert_nothing_leaked(root, seen)


@pytest.fixture
def image(orc: object, busybox_tar: Path) -> str:
    orc.import_image("busybox", busybox_tar)  # type: ignore[attr-defined]
    return "busybox"



@pytest.fixture(scope="session")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    """The three-layer image of tests/oci_images.py, built once, in its private storage."""
    missing = missing_tools("buildah", "skopeo", "podman", "busybox")
    if missing:
        pytest.skip(f"needs apt-get install {' '.join(missing)}")
    image = build_test_image(tmp_path_factory.mktemp("oci-images") / "storage")
    yield image
    image.storage.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's docker-registry on 127.0.0.1 and a free port, over plain HTTP."""
    missing = missing_tools("docker-registry")
    if missing:
        pytest.skip(f"needs apt-get install {' '.join(missing)}")
    server = Registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()
