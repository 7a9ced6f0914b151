"""``berth run`` in the foreground, as a Docker user runs it: the streams apart and byte for
byte, live, the exit code relayed, signals forwarded, ``--rm`` kept by the container itself, and
a removal from elsewhere ending the run with the container's code."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fsm import Orchestrator
from tests.conftest import known_container_ids
from tests.hostcheck import assert_nothing_leaked
from tests.test_cli import BERTH
from tests.test_monitor import EVERY_BYTE

pytestmark = pytest.mark.root


@pytest.fixture
def env(orc: Orchestrator, image: str, root: Path, database_url: str) -> dict[str, str]:
    return {**os.environ, "BERTH_ROOT": str(root), "BERTH_DATABASE_URL": database_url}


def _running(orc: Orchestrator, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        running = orc.list()
        if running:
            return running[0].id
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_run_keeps_the_streams_apart_byte_for_byte_and_removes_the_container(
        orc: Orchestrator, env: dict[str, str], root: Path) -> None:
    done = subprocess.run(
        [*BERTH, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
         f"printf '{EVERY_BYTE}'; echo to-stderr >&2; exit 3"],
        env=env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout, done.stderr) == (3, bytes(range(256)), b"to-stderr\n")
    assert orc.list(all=True) == []
    assert_nothing_leaked(root, known_container_ids(orc))


def test_the_first_line_arrives_while_the_process_still_runs(
        orc: Orchestrator, env: dict[str, str]) -> None:
    run = subprocess.Popen(
        [*BERTH, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
         "echo first; sleep 600"], env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert run.stdout is not None
    assert run.stdout.readline() == b"first\n"
    container = _running(orc)
    assert orc.get(container).state == "running"
    orc.kill(container, "KILL")
    assert run.wait(timeout=60) == 137


def test_sigterm_to_a_foreground_run_reaches_the_container(
        orc: Orchestrator, env: dict[str, str]) -> None:
    run = subprocess.Popen(
        [*BERTH, "run", "--network", "none", "busybox", "sh", "-c",
         "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.05; done"],
        env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert run.stdout is not None
    assert run.stdout.readline() == b"ready\n"
    run.send_signal(signal.SIGTERM)
    assert run.stdout.read() == b"got TERM\n"
    assert run.wait(timeout=60) == 5
    (kill,) = orc.events(actions=["kill"])
    assert kill.attributes["signal"] == "SIGTERM"


def test_a_container_removed_under_its_run_ends_the_run_with_its_code(
        orc: Orchestrator, env: dict[str, str]) -> None:
    run = subprocess.Popen(
        [*BERTH, "run", "--network", "none", "busybox", "sh", "-c", "echo up; sleep 600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert run.stdout is not None
    assert run.stdout.readline() == b"up\n"
    orc.remove(_running(orc), force=True)
    assert run.wait(timeout=60) == 137, run.stderr.read() if run.stderr else ""


def test_rm_is_kept_by_the_container_when_its_run_is_killed(
        orc: Orchestrator, env: dict[str, str]) -> None:
    run = subprocess.Popen(
        [*BERTH, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
         "echo up; sleep 0.5; exit 4"], env=env, stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL)
    assert run.stdout is not None
    assert run.stdout.readline() == b"up\n"
    container = _running(orc)
    run.kill()  # the CLI dies; the container's own record of --rm removes it after its exit
    run.wait(timeout=60)
    deadline = time.monotonic() + 60
    while orc.list(all=True):
        assert time.monotonic() < deadline, orc.list(all=True)
        time.sleep(0.05)
    dies = orc.events(container=container, actions=["die"])
    assert [e.attributes["exitCode"] for e in dies] == [4]


def test_exec_through_the_cli_relays_streams_stdin_and_the_exit_code(
        orc: Orchestrator, env: dict[str, str], image: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none")
    orc.start(c.id)
    done = subprocess.run([*BERTH, "exec", "-i", "-w", "/tmp", "-e", "X=1", c.id, "sh", "-c",
                           "cat; pwd; echo $X >&2; exit 7"], env=env, input=b"fed\n",
                          capture_output=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (7, b"fed\n/tmp\n", b"1\n")
    orc.stop(c.id, timeout=0)
    refused = subprocess.run([*BERTH, "exec", c.id, "true"], env=env, capture_output=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    assert refused.returncode == 1 and b"only a running container" in refused.stderr
