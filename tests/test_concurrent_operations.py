"""Operations that meet on one container: a second start waits for the first, a forced removal
always wins over a start under way or a restart loop, and ``gc`` unmounts what it deletes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.mounts import mount_tmpfs
from fsm import BerthError, Orchestrator, states
from tests.audit import assert_legal_chain
from tests.hostcheck import mounts_under

pytestmark = pytest.mark.root


def _in_threads(*calls: object) -> list[object]:
    """Run the calls at once; what each returned or raised, in order."""
    results: list[object] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(index: int, call: object) -> None:
        barrier.wait()
        try:
            results[index] = call()  # type: ignore[operator]
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.fixture
def other(orc: Orchestrator, database_url: str, root: Path) -> Iterator[Orchestrator]:
    """A second orchestrator process's view of the same database and host."""
    with Orchestrator(database_url=database_url, root=root, storage=orc.storage.name,
                      recover=False) as second:
        yield second


def test_a_second_start_waits_for_the_first_and_succeeds(
        orc: Orchestrator, other: Orchestrator, image: str) -> None:
    for _round in range(5):
        c = orc.create(image, ["sleep", "600"], network_mode="none")
        results = _in_threads(lambda c=c: orc.start(c.id), lambda c=c: other.start(c.id))
        assert [getattr(r, "state", r) for r in results] == [states.RUNNING] * 2
        history = orc.history(c.id)
        assert [t.trigger for t in history].count("start") == 1
        assert_legal_chain([(t.source, t.dest) for t in history], c.id)
        orc.remove(c.id, force=True)


def test_forced_removal_of_a_container_being_started_always_succeeds(
        orc: Orchestrator, other: Orchestrator, image: str, root: Path) -> None:
    for _round in range(5):
        c = orc.create(image, ["sleep", "600"], network_mode="none")
        results = _in_threads(lambda c=c: other.start(c.id),
                              lambda c=c: orc.remove(c.id, force=True))
        assert results[1] is None, results
        assert orc.list(all=True) == []
    assert mounts_under(root) == []


def test_forced_removal_ends_a_restart_loop(orc: Orchestrator, image: str, root: Path) -> None:
    for _round in range(5):
        c = orc.create(image, ["sh", "-c", "exit 1"], network_mode="none",
                       restart_policy="always")
        orc.start(c.id)
        # let the exit hook's restart loop get going: a second run has started
        deadline = time.monotonic() + 60
        while orc.get(c.id).run < 2:
            assert time.monotonic() < deadline, "the restart policy never restarted it"
            time.sleep(0.02)
        orc.remove(c.id, force=True)
        with pytest.raises(BerthError):
            orc.get(c.id)
    assert orc.list(all=True) == []
    assert mounts_under(root) == []
    assert sorted(p.name for p in (root / "containers").iterdir()) == []


def test_gc_unmounts_what_it_removes(orc: Orchestrator, root: Path) -> None:
    orphan = root / "containers" / ("0" * 64)
    (orphan / "shm").mkdir(parents=True)
    mount_tmpfs(str(orphan / "shm"), ["size=1m"])
    assert orc.gc()["container dir"] == ["0" * 64]
    orc.gc(remove=True)
    assert mounts_under(root) == []
    assert not orphan.exists()
