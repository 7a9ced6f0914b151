"""Crash safety: a real orchestrator process killed with SIGKILL at every side-effect point of
start, stop and remove; ``recover()`` then leaves no container in flight and nothing on the host,
and the audit trail says what happened. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsm import Orchestrator, states
from tests.audit import assert_legal_chain
from tests.conftest import known_container_ids
from tests.hostcheck import assert_nothing_leaked

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]

START_POINTS = [
    "commit.start", "overlay.after_mount", "start.after_mount", "commit.mounted",
    "start.after_network", "start.after_shm", "commit.networked", "start.after_process",
]
FAIL_POINTS = ["undo.after_stop_process", "undo.after_release_network", "undo.after_put_rootfs",
               "commit.fail"]
STOP_POINTS = ["commit.stop", "stop.after_signal"]
REMOVE_POINTS = ["commit.remove", "overlay.after_unmount", "overlay.after_rename",
                 "overlay.after_unlink", "remove.after_remove_layer"]


def _crash(orc: Orchestrator, root: Path, database_url: str, operation: str,
           container_id: str, point: str) -> None:
    """Run the operation in a fresh process that SIGKILLs itself at ``point``."""
    if point.startswith("overlay.") and orc.storage.name != "overlay":
        pytest.skip(f"{point} is a point of the overlay driver")
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", str(root), database_url, operation,
         container_id],
        env={**os.environ, "BERTH_CRASH_AT": point, "BERTH_STORAGE": orc.storage.name},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == -signal.SIGKILL, (
        f"the process did not die at {point}: exit {result.returncode}\n{result.stderr}")


def _recover_and_check(orc: Orchestrator, root: Path, container_id: str) -> None:
    report = orc.recover()
    info = orc.get(container_id)
    # recovery reports only what it changed: a process whose conmon lives is left running
    assert container_id in report["failed"] + report["exited"] or (
        info.state == states.RUNNING and report == {"failed": [], "exited": []}), report
    assert info.state not in states.IN_FLIGHT
    assert_legal_chain([(t.source, t.dest) for t in orc.history(container_id)], container_id)


def _wait_settled(orc: Orchestrator, container_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while orc.get(container_id).state not in (states.EXITED, states.DEAD, states.CREATED):
        assert time.monotonic() < deadline, orc.get(container_id)
        time.sleep(0.05)


@pytest.mark.parametrize("point", START_POINTS)
def test_crash_during_start(orc: Orchestrator, image: str, root: Path, database_url: str,
                            point: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none" if "network" not in point
                   else "bridge")
    _crash(orc, root, database_url, "start", c.id, point)
    _recover_and_check(orc, root, c.id)
    info = orc.get(c.id)
    assert (info.state, info.exit_code, info.error) == ("dead", 128, "interrupted")
    die = orc.events(container=c.id, actions=["die"])
    assert [e.attributes.get("error") for e in die] == ["interrupted"]
    orc.remove(c.id)
    assert_nothing_leaked(root, known_container_ids(orc))


def test_crash_right_after_running_is_committed_adopts_the_process(
    orc: Orchestrator, image: str, root: Path, database_url: str
) -> None:
    c = orc.create(image, ["sh", "-c", "sleep 2; exit 5"], network_mode="none")
    _crash(orc, root, database_url, "start", c.id, "commit.started")
    # the process runs on under its conmon: recovery changes nothing, and says so
    assert orc.recover() == {"failed": [], "exited": []}
    assert orc.get(c.id).state == states.RUNNING
    assert orc.wait(c.id, timeout=60) == 5  # conmon outlived its caller and recorded the exit
    orc.remove(c.id)
    assert_nothing_leaked(root, known_container_ids(orc))


@pytest.mark.parametrize("point", FAIL_POINTS)
def test_crash_during_the_error_edge(orc: Orchestrator, image: str, root: Path,
                                     database_url: str, point: str) -> None:
    c = orc.create(image, ["/no/such/binary"], network_mode="none")
    _crash(orc, root, database_url, "start", c.id, point)
    if point != "commit.fail":
        _recover_and_check(orc, root, c.id)
    info = orc.get(c.id)
    assert (info.state, info.exit_code) == ("dead", 128)
    orc.remove(c.id)
    assert_nothing_leaked(root, known_container_ids(orc))


@pytest.mark.parametrize("point", STOP_POINTS)
def test_crash_during_stop(orc: Orchestrator, image: str, root: Path, database_url: str,
                           point: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none")
    orc.start(c.id)
    _crash(orc, root, database_url, "stop", c.id, point)
    orc.recover()
    _wait_settled(orc, c.id)
    info = orc.get(c.id)
    assert info.state == "exited"
    assert info.exit_code in (128 + signal.SIGKILL, 128 + signal.SIGTERM)
    orc.remove(c.id)
    assert_nothing_leaked(root, known_container_ids(orc))


@pytest.mark.parametrize("point", REMOVE_POINTS)
def test_crash_during_remove(orc: Orchestrator, image: str, root: Path, database_url: str,
                             point: str) -> None:
    c = orc.create(image, ["true"], network_mode="none")
    _crash(orc, root, database_url, "remove", c.id, point)
    _recover_and_check(orc, root, c.id)
    assert orc.get(c.id).state == "dead"
    orc.remove(c.id)  # a dead container can be removed again
    assert orc.list(all=True) == []
    assert c.id not in orc.storage.layers()  # nor half-removed
    assert_nothing_leaked(root, known_container_ids(orc))


def test_idle_recovery_does_nothing(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["true"], network_mode="none")
    assert orc.recover() == {"failed": [], "exited": []}
    assert orc.get(c.id).state == "created"
