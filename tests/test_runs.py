"""Each start is a run of its own: a stop followed at once by a start (or ``restart``) leaves the
new run running, and every exit code recorded is its own run's, however late the previous run's
monitor reports (its report names its run, and an earlier run's changes nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsm import Orchestrator, states

pytestmark = [pytest.mark.root, pytest.mark.slow]
ROUNDS = 50
#: each run counts itself in a file of its rootfs and exits with its own number on SIGTERM; it
#: says "ready N" once its trap is set (as pid 1, sh ignores a SIGTERM that comes before)
COUNTING = ("trap 'exit $n' TERM; n=$(cat /run-count 2>/dev/null || echo 0); n=$((n+1)); "
            "echo $n > /run-count; echo ready $n; while :; do sleep 0.05; done")


def _assert_run(orc: Orchestrator, container_id: str, number: int) -> None:
    """The container runs its run ``number``, whose trap is set."""
    info = orc.get(container_id)
    assert (info.state, info.run) == (states.RUNNING, number), info
    deadline = time.monotonic() + 30
    while f"ready {number}\n" not in orc.log_text(container_id):
        assert time.monotonic() < deadline, orc.log_text(container_id)
        time.sleep(0.01)


@pytest.mark.parametrize("network_mode", ["none", "bridge"])
def test_stop_then_start_fifty_times_through_the_api(orc: Orchestrator, image: str,
                                                     network_mode: str) -> None:
    created = orc.create(image, ["sh", "-c", COUNTING], network_mode=network_mode)
    orc.start(created.id)
    for number in range(1, ROUNDS + 1):
        _assert_run(orc, created.id, number)
        stopped = orc.stop(created.id, timeout=10)
        assert (stopped.state, stopped.exit_code) == (states.EXITED, number)
        orc.start(created.id)
    _assert_run(orc, created.id, ROUNDS + 1)
    # the late reports of fifty earlier runs changed nothing: it still runs
    assert orc.get(created.id).state == states.RUNNING
    codes = [e.attributes["exitCode"] for e in orc.events(container=created.id, actions=["die"])]
    assert codes == list(range(1, ROUNDS + 1))
    orc.remove(created.id, force=True)


def _berth(root: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).with_name("berth")
    command = [str(beside)] if beside.exists() else [shutil.which("berth") or "berth"]
    env = {**os.environ, "BERTH_ROOT": str(root), "BERTH_DATABASE_URL": database_url}
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120,
                          env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize(("network_mode", "how"), [("none", "restart"), ("bridge", "stop+start")])
def test_fifty_restarts_through_the_cli(root: Path, busybox_tar: Path, tmp_path: Path,
                                        network_mode: str, how: str) -> None:
    url = f"sqlite:///{tmp_path / 'berth.db'}"
    with Orchestrator(database_url=url, root=root, storage="vfs") as orc:
        orc.import_image("busybox", busybox_tar)
        created = orc.create("busybox", ["sh", "-c", COUNTING], network_mode=network_mode)
        orc.start(created.id)
        _assert_run(orc, created.id, 1)
    for number in range(1, ROUNDS + 1):
        if how == "restart":
            _berth(root, url, "restart", "-t", "10", created.id)
        else:
            _berth(root, url, "stop", "-t", "10", created.id)
            _berth(root, url, "start", created.id)
        with Orchestrator(database_url=url, root=root, storage="vfs", recover=False) as orc:
            _assert_run(orc, created.id, number + 1)
    with Orchestrator(database_url=url, root=root, storage="vfs") as orc:
        codes = [e.attributes["exitCode"] for e in orc.events(container=created.id,
                                                              actions=["die"])]
        assert codes == list(range(1, ROUNDS + 1))
        orc.remove(created.id, force=True)
