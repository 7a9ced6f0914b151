"""The error edge: a failure at any step of start undoes what was done, records why, and the
container is dead with exit code 128 and one ``die`` event."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.network.namespace import list_netns
from fsm import Orchestrator, StartFailed
from tests.hostcheck import bundles, mounts_under, runtime_containers

pytestmark = pytest.mark.root


def _assert_died_cleanly(orc: Orchestrator, container_id: str, root: Path, words: str) -> None:
    info = orc.get(container_id)
    assert info.state == "dead"
    assert info.exit_code == 128
    assert words in info.error
    dies = orc.events(container=container_id, actions=["die"])
    assert len(dies) == 1 and dies[0].attributes["exitCode"] == 128
    assert words in dies[0].attributes["error"]
    assert orc.history(container_id)[-1].trigger == "fail"
    assert not any(n.endswith(container_id[:16]) for n in list_netns())
    assert mounts_under(root) == []
    assert runtime_containers(root) == []
    assert bundles(root) == []


def test_missing_layer_fails_while_mounting(orc: Orchestrator, image: str, root: Path) -> None:
    c = orc.create(image, ["true"], network_mode="none")
    orc.storage.remove(c.id)  # the container's layer is gone from disk
    with pytest.raises(StartFailed, match="mounting the rootfs"):
        orc.start(c.id)
    _assert_died_cleanly(orc, c.id, root, "mounting the rootfs")


def test_unreachable_network_fails_while_networking(
    orc: Orchestrator, image: str, root: Path
) -> None:
    other = orc.create(image, ["true"], network_mode="none", name="not-running")
    c = orc.create(image, ["true"], network_mode=f"container:{other.name}")
    with pytest.raises(StartFailed, match="setting up the network"):
        orc.start(c.id)
    _assert_died_cleanly(orc, c.id, root, "not-running")


def test_missing_binary_fails_while_starting(orc: Orchestrator, image: str, root: Path) -> None:
    c = orc.create(image, ["/bin/no-such-program"], network_mode="none")
    with pytest.raises(StartFailed, match="no-such-program"):
        orc.start(c.id)
    _assert_died_cleanly(orc, c.id, root, "starting the process")


def test_a_working_dir_that_cannot_be_made_fails_while_preparing_the_process(
        orc: Orchestrator, image: str, root: Path) -> None:
    # /bin/busybox is a file: no directory can be made below it
    c = orc.create(image, ["true"], network_mode="none", working_dir="/bin/busybox/work")
    with pytest.raises(StartFailed, match="preparing the process") as failed:
        orc.start(c.id)
    assert "setting up the network" not in str(failed.value)
    _assert_died_cleanly(orc, c.id, root, "preparing the process")
