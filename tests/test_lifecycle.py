"""A real container through its lifecycle: busybox under runc on a vfs rootfs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fsm import InvalidState, Orchestrator, StartFailed
from tests.hostcheck import mounts_under

pytestmark = pytest.mark.root


def test_container_passes_every_step_in_order_and_keeps_its_exit_code(
    orc: Orchestrator, image: str, root: Path
) -> None:
    created = orc.create(image, ["sh", "-c", "echo hi; exit 7"], network_mode="none")
    assert created.state == "created"

    started = orc.start(created.id)
    assert started.state == "running" and started.pid and started.has_been_started_before
    assert orc.wait(created.id, timeout=60) == 7

    done = orc.get(created.id)
    assert (done.state, done.exit_code, done.error) == ("exited", 7, "")
    assert done.finished_at is not None and done.started_at is not None
    steps = [(t.trigger, t.source, t.dest) for t in orc.history(created.id)]
    assert steps == [
        ("start", "created", "mounting"),
        ("mounted", "mounting", "networking"),
        ("networked", "networking", "starting"),
        ("started", "starting", "running"),
        ("exit", "running", "exited"),
    ]
    dies = orc.events(container=created.id, actions=["die"])
    assert [e.attributes["exitCode"] for e in dies] == [7]
    assert orc.log_text(created.id) == "hi\n"
    assert mounts_under(root) == []


def test_restarting_an_exited_container_runs_it_again(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", "echo run >> /tmp/runs; cat /tmp/runs | wc -l"],
                   network_mode="none")
    orc.start(c.id)
    orc.wait(c.id, timeout=60)
    orc.start(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    # the container's own layer is kept between runs
    assert orc.log_text(c.id).split() == ["1", "2"]


def test_start_of_a_running_container_changes_nothing(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none")
    first = orc.start(c.id)
    history = orc.history(c.id)
    again = orc.start(c.id)
    assert (again.state, again.pid) == ("running", first.pid)
    assert orc.history(c.id) == history
    orc.stop(c.id, timeout=0)


def test_stop_kills_a_process_that_ignores_sigterm_after_the_timeout(
    orc: Orchestrator, image: str
) -> None:
    c = orc.create(image, ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"],
                   network_mode="none")
    orc.start(c.id)
    stopped = orc.stop(c.id, timeout=1)
    assert stopped.state == "exited"
    assert stopped.exit_code == 128 + signal.SIGKILL
    actions = [e.action for e in orc.events(container=c.id)]
    assert actions[-4:] == ["kill", "kill", "die", "stop"]


def test_stop_of_a_process_that_honours_sigterm(orc: Orchestrator, image: str) -> None:
    # pid 1 has no default signal actions: like Docker, the program must handle SIGTERM itself
    handles_term = "trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done"
    c = orc.create(image, ["sh", "-c", handles_term], network_mode="none")
    orc.start(c.id)
    stopped = orc.stop(c.id, timeout=60)
    assert (stopped.state, stopped.exit_code) == ("exited", 3)
    assert orc.log_text(c.id) == "bye\n"
    assert [e.attributes.get("signal") for e in orc.events(container=c.id, actions=["kill"])] == [
        "SIGTERM"
    ]


@pytest.mark.parametrize("mode", ["none", "host"])
def test_network_modes_none_and_host(orc: Orchestrator, image: str, mode: str) -> None:
    c = orc.create(image, ["sh", "-c", "ls /sys/class/net"], network_mode=mode)
    orc.start(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    interfaces = orc.log_text(c.id).split()
    if mode == "none":
        assert interfaces == ["lo"]
    else:
        assert len(interfaces) > 1 and "lo" in interfaces


def test_environment_working_dir_and_tmpfs_reach_the_process(
    orc: Orchestrator, image: str
) -> None:
    c = orc.create(
        image, ["sh", "-c", 'echo "$GREETING"; pwd; grep -c " /scratch tmpfs" /proc/mounts; '
                "grep ' /dev/shm ' /proc/mounts | grep -c size=1024k"],
        env={"GREETING": "hello world"}, working_dir="/srv/app", network_mode="none",
        tmpfs={"/scratch": "size=1m"}, shm_size="1m",
    )
    orc.start(c.id)
    assert orc.wait(c.id, timeout=60) == 0
    assert orc.log_text(c.id).split("\n")[:4] == ["hello world", "/srv/app", "1", "1"]


def test_remove_deletes_row_layer_and_files_but_keeps_history(
    orc: Orchestrator, image: str, root: Path
) -> None:
    c = orc.create(image, ["true"], network_mode="none")
    orc.start(c.id)
    orc.wait(c.id, timeout=60)
    orc.remove(c.id)
    assert orc.list(all=True) == []
    assert not orc.storage.exists(c.id)
    assert not orc.paths(c.id).root.exists()
    assert [t.trigger for t in orc.history(c.id)][-2:] == ["remove", "removed"]
    assert orc.events(container=c.id)[-1].action == "destroy"


def test_remove_of_a_running_container_needs_force(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sleep", "600"], network_mode="none")
    orc.start(c.id)
    with pytest.raises(InvalidState, match="force"):
        orc.remove(c.id)
    assert orc.get(c.id).state == "running"
    orc.remove(c.id, force=True)
    assert orc.list(all=True) == []


def test_start_of_a_dead_container_fails_clearly(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["/no/such/program"], network_mode="none")
    with pytest.raises(StartFailed):
        orc.start(c.id)
    with pytest.raises(InvalidState, match="dead"):
        orc.start(c.id)
