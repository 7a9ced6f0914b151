"""IPC modes (the seed's setupIpcDirs/IpcMounts), tmpfs and bind mounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsm import Orchestrator

pytestmark = pytest.mark.root


def _output(orc: Orchestrator, container_id: str) -> str:
    assert orc.wait(container_id, timeout=60) == 0, orc.log_text(container_id)
    return orc.log_text(container_id).strip()


def test_private_ipc_is_its_own_namespace_and_host_ipc_is_the_hosts(
    orc: Orchestrator, image: str
) -> None:
    host_ipc = os.readlink("/proc/self/ns/ipc")
    private = orc.create(image, ["readlink", "/proc/self/ns/ipc"], network_mode="none")
    shared = orc.create(image, ["readlink", "/proc/self/ns/ipc"], network_mode="none",
                        ipc_mode="host")
    orc.start(private.id)
    orc.start(shared.id)
    assert _output(orc, private.id) != host_ipc
    assert _output(orc, shared.id) == host_ipc


def test_container_ipc_joins_the_other_containers_namespace_and_shm(
    orc: Orchestrator, image: str
) -> None:
    owner = orc.create(image, ["sh", "-c", "echo shared > /dev/shm/token; sleep 600"],
                       network_mode="none", name="ipc-owner")
    orc.start(owner.id)
    owner_pid = orc.get(owner.id).pid
    joiner = orc.create(image, ["sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/token"],
                        network_mode="none", ipc_mode="container:ipc-owner")
    orc.start(joiner.id)
    namespace, token = _output(orc, joiner.id).splitlines()
    assert namespace == os.readlink(f"/proc/{owner_pid}/ns/ipc")
    assert token == "shared"
    orc.stop(owner.id, timeout=0)


def test_read_only_bind_mount_is_readable_and_not_writable(
    orc: Orchestrator, image: str, tmp_path: Path
) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "hello.txt").write_text("from the host\n")
    c = orc.create(image, ["sh", "-c", "cat /data/hello.txt; touch /data/new 2>/dev/null "
                                       "&& echo wrote || echo refused"],
                   network_mode="none",
                   mounts=[{"source": str(source), "target": "/data", "read_only": True}])
    orc.start(c.id)
    assert _output(orc, c.id).splitlines() == ["from the host", "refused"]
    assert sorted(os.listdir(source)) == ["hello.txt"]


def test_writable_bind_mount_reaches_the_host(orc: Orchestrator, image: str,
                                              tmp_path: Path) -> None:
    source = tmp_path / "out"
    source.mkdir()
    c = orc.create(image, ["sh", "-c", "echo result > /out/file"], network_mode="none",
                   mounts=[{"source": str(source), "target": "/out"}])
    orc.start(c.id)
    _output(orc, c.id)
    assert (source / "file").read_text() == "result\n"


def test_tmpfs_options_apply(orc: Orchestrator, image: str) -> None:
    c = orc.create(image, ["sh", "-c", "grep ' /run ' /proc/mounts"], network_mode="none",
                   tmpfs={"/run": "size=2m,noexec,mode=1770"})
    orc.start(c.id)
    line = _output(orc, c.id)
    assert "tmpfs /run tmpfs" in line and "noexec" in line and "size=2048k" in line
    assert "mode=1770" in line
