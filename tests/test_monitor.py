"""The monitor is conmon: the process's streams kept apart and byte for byte in its log, the log
capped, and a conmon killed under a running container handled by recovery."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from fsm import Orchestrator
from fsm.recovery import MONITOR_DIED
from tests.conftest import known_container_ids
from tests.hostcheck import assert_nothing_leaked

pytestmark = pytest.mark.root

#: every byte value, as busybox printf's octal escapes: what a text decoder would mangle
EVERY_BYTE = "".join(f"\\{value:03o}" for value in range(256))


def test_logs_keep_stdout_and_stderr_apart_in_order_with_their_times(
        orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", "echo out1; echo err1 >&2; sleep 0.2; echo out2; "
                           "printf partial"], network_mode="none")
    orc.start(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    lines = list(orc.logs(c.id))
    assert [(line.stream, line.data) for line in lines if line.stream == "stdout"] == [
        ("stdout", b"out1\n"), ("stdout", b"out2\n"), ("stdout", b"partial")]
    assert [line.data for line in orc.logs(c.id, stdout=False)] == [b"err1\n"]
    times = [line.time for line in lines if line.stream == "stdout"]
    assert times == sorted(times) and times[1] - times[0] >= timedelta(seconds=0.15)
    assert [line.data for line in orc.logs(c.id, tail=1)] == [b"partial"]
    assert list(orc.logs(c.id, since=times[1])) == lines[-2:]
    assert orc.log_text(c.id, stderr=False) == "out1\nout2\npartial"


def test_binary_output_comes_back_byte_for_byte(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", f"printf '{EVERY_BYTE}'; printf '{EVERY_BYTE}'"],
                   network_mode="none")
    orc.start(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    assert b"".join(line.data for line in orc.logs(c.id)) == bytes(range(256)) * 2


def test_the_log_cap_holds_and_keeps_the_newest_lines_across_restarts(
        orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", "for i in $(seq 1 100); do echo line $i; done"],
                   network_mode="none", log_max_size="2k")
    for _run in range(2):
        orc.start(c.id)
        assert orc.wait(c.id, timeout=60) == 0
        assert orc.paths(c.id).log.stat().st_size <= 2048
        text = orc.log_text(c.id)
        assert text.endswith("line 99\nline 100\n") and "line 1\n" not in text
    assert orc.get(c.id).host_config["log_max_size"] == 2048


def test_a_killed_monitor_ends_the_run_with_128_and_says_why(
        orc: Orchestrator, image: str, root: Path) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none")
    orc.start(c.id)
    paths = orc.host.run_paths(orc.db.resolve(c.id))
    monitor = int(paths.monitor_pid_file.read_text())
    os.kill(monitor, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while orc.runtime.monitor_alive(paths):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert orc.recover() == {"failed": [], "exited": [c.id]}
    info = orc.get(c.id)
    assert (info.state, info.exit_code, info.error) == ("exited", 128, MONITOR_DIED)
    assert orc.runtime.state(c.id) is None  # the unwatched process was ended
    (die,) = orc.events(container=c.id, actions=["die"])
    assert die.attributes == {**die.attributes, "exitCode": 128, "error": MONITOR_DIED}
    orc.remove(c.id)
    assert_nothing_leaked(root, known_container_ids(orc))


def _wait_for_text(orc: Orchestrator, container_id: str, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in orc.log_text(container_id):
        assert time.monotonic() < deadline, orc.log_text(container_id)
        time.sleep(0.02)


def test_kill_sends_the_signal_the_process_traps_and_records_it(
        orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", "trap 'echo got USR1' USR1; echo ready; "
                           "while true; do sleep 0.05; done"], network_mode="none")
    orc.start(c.id)
    _wait_for_text(orc, c.id, "ready")
    orc.kill(c.id, "usr1")
    _wait_for_text(orc, c.id, "got USR1")
    assert orc.get(c.id).state == "running"
    orc.kill(c.id)  # KILL by default
    assert orc.wait(c.id, timeout=30) == 137
    kills = orc.events(container=c.id, actions=["kill"])
    assert [e.attributes["signal"] for e in kills] == ["SIGUSR1", "SIGKILL"]


def test_kill_refuses_a_container_without_a_process_and_an_unknown_signal(
        orc: Orchestrator, image: str) -> None:
    from fsm.errors import ConfigError, InvalidState

    c = orc.create(image, ["true"], network_mode="none")
    with pytest.raises(InvalidState, match="only a running container"):
        orc.kill(c.id)
    with pytest.raises(ConfigError, match="signal"):
        orc.kill(c.id, "SIGNOPE")


def test_exec_relays_the_exit_code_and_streams_with_the_user_and_directory_asked_for(
        orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none", env={"FROM": "container"})
    orc.start(c.id)
    done = orc.exec(c.id, ["sh", "-c", "echo $FROM $EXTRA; pwd; id -u; echo err >&2; exit 3"],
                    user="1000:1000", env={"EXTRA": "exec"}, working_dir="/tmp")
    assert (done.exit_code, done.stdout, done.stderr) == (
        3, b"container exec\n/tmp\n1000\n", b"err\n")
    fed = orc.exec(c.id, ["cat"], stdin=EVERY_BYTE.encode())
    assert (fed.exit_code, fed.stdout) == (0, EVERY_BYTE.encode())
    actions = [e.action for e in orc.events(container=c.id) if e.action.startswith("exec_")]
    assert actions == ["exec_create", "exec_start", "exec_die"] * 2
    (first_die, _) = orc.events(container=c.id, actions=["exec_die"])
    assert first_die.attributes["exitCode"] == 3
    assert orc.get(c.id).state == "running"  # the container's own process is untouched
    assert not (orc.paths(c.id).root / "exec").exists() or not any(
        (orc.paths(c.id).root / "exec").iterdir())


def test_exec_into_a_container_that_is_not_running_fails_clearly(
        orc: Orchestrator, image: str) -> None:
    from fsm.errors import ConfigError, InvalidState

    c = orc.create(image, ["true"], network_mode="none")
    with pytest.raises(InvalidState, match="only a running container"):
        orc.exec(c.id, ["true"])
    with pytest.raises(ConfigError, match="command"):
        orc.exec(c.id, [])
    assert orc.events(container=c.id, actions=["exec_create"]) == []


def test_an_exec_whose_caller_is_killed_is_ended_by_recovery(
        orc: Orchestrator, image: str, root: Path, database_url: str) -> None:
    import subprocess
    import sys

    c = orc.create(image, ["sleep", "600"], network_mode="none")
    orc.start(c.id)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", str(root), database_url, "exec", c.id],
        env={**os.environ, "BERTH_CRASH_AT": "exec.after_start",
             "BERTH_STORAGE": orc.storage.name},
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sessions = orc.paths(c.id).root / "exec"
    assert len(list(sessions.iterdir())) == 1  # its sleep runs on, watched by its conmon
    assert orc.recover() == {"failed": [], "exited": [], "exec sessions": [c.id]}
    assert list(sessions.iterdir()) == []
    (die,) = orc.events(container=c.id, actions=["exec_die"])
    assert (die.attributes["exitCode"], die.attributes["error"]) == (137, "interrupted")
    # only the container's own sleep is left in it
    done = orc.exec(c.id, ["sh", "-c", "ps -o comm | grep -c sleep"])
    assert done.stdout == b"1\n"
    assert orc.recover() == {"failed": [], "exited": []}
