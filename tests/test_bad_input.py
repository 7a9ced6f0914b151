"""Bad input gets a clear error naming the field, the value and what is allowed, before any side
effect: no row, no layer, no file, no namespace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from drivers.network.namespace import list_netns
from fsm import (
    AmbiguousReference,
    BerthError,
    ConfigError,
    NameInUse,
    NoSuchContainer,
    NoSuchImage,
    Orchestrator,
)


def _tree(root: Path) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root)
            for d, dirs, files in os.walk(root) for f in files + dirs}


BAD_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"command": []}, "command"),
    ({"command": "echo hi"}, "command"),
    ({"command": ["echo", 3]}, "command"),
    ({"command": ["echo\x00"]}, "command"),
    ({"name": "a/b"}, "name"),
    ({"name": ".."}, "name"),
    ({"name": "x..y"}, "name"),
    ({"name": ""}, "name"),
    ({"network_mode": "overlay"}, "network_mode"),
    ({"network_mode": "container:"}, "network_mode"),
    ({"ipc_mode": "shareable-ish"}, "ipc_mode"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"env": {"GOOD": 1}}, "env['GOOD']"),
    ({"working_dir": "relative/dir"}, "working_dir"),
    ({"working_dir": "/a/../../etc"}, "working_dir"),
    ({"tmpfs": {"/run": "size=lots"}}, "tmpfs['/run'] size"),
    ({"tmpfs": {"run": ""}}, "tmpfs"),
    ({"tmpfs": {"/run": "exec=1"}}, "tmpfs['/run']"),
    ({"restart_policy": "sometimes"}, "restart_policy"),
    ({"restart_policy": "on-failure:-1"}, "restart_policy"),
    ({"links": ["bad name:alias"]}, "links"),
    ({"mounts": [{"source": "/no/such/dir", "target": "/data"}]}, "mounts.source"),
    ({"mounts": [{"source": "/tmp", "target": "data"}]}, "mounts.target"),
    ({"mounts": [{"source": "/tmp", "target": "/x/../y"}]}, "mounts.target"),
    ({"exposed_ports": ["99999/tcp"]}, "exposed_ports"),
    ({"shm_size": "0"}, "shm_size"),
]


@pytest.mark.parametrize(("arguments", "field"), BAD_CREATES,
                         ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_CREATES)])
def test_bad_create_argument_names_field_and_changes_nothing(
    orc: Orchestrator, image: str, root: Path, arguments: dict[str, Any], field: str
) -> None:
    before, netns = _tree(root), list_netns()
    call = {"command": ["true"], **arguments}
    with pytest.raises(ConfigError) as raised:
        orc.create(image, **call)
    assert raised.value.field == field
    assert field in str(raised.value) and "is not valid" in str(raised.value)
    assert orc.list(all=True) == []
    assert _tree(root) == before
    assert list_netns() == netns


def test_unknown_image_is_refused(orc: Orchestrator, root: Path) -> None:
    before = _tree(root)
    with pytest.raises(NoSuchImage, match="berth image import"):
        orc.create("nope", ["true"])
    assert orc.list(all=True) == [] and _tree(root) == before


def test_duplicate_name_is_refused(orc: Orchestrator, image: str, root: Path) -> None:
    first = orc.create(image, ["true"], name="web", network_mode="none")
    before = _tree(root)
    with pytest.raises(NameInUse, match="'web' is already in use by " + first.id[:12]):
        orc.create(image, ["true"], name="web", network_mode="none")
    assert [c.id for c in orc.list(all=True)] == [first.id]
    assert _tree(root) == before


def test_link_or_join_to_an_unknown_container_is_refused(orc: Orchestrator, image: str) -> None:
    with pytest.raises(NoSuchContainer):
        orc.create(image, ["true"], links=["ghost:db"])
    with pytest.raises(NoSuchContainer):
        orc.create(image, ["true"], network_mode="container:ghost")
    assert orc.list(all=True) == []


def test_a_prefix_that_matches_two_ids_is_ambiguous(orc: Orchestrator, image: str) -> None:
    ids = [orc.create(image, ["true"], network_mode="none").id for _ in range(40)]
    # 40 random ids: some pair shares its first hex digit
    first_digits = [i[0] for i in ids]
    shared = next(d for d in first_digits if first_digits.count(d) > 1)
    with pytest.raises(AmbiguousReference, match="give more of the id"):
        orc.get(shared)
    assert orc.get(ids[0][:12]).id == ids[0]


@pytest.mark.parametrize("ref", ["", "x" * 200, "a\x00b", "../../etc"])
def test_bad_refs_are_refused(orc: Orchestrator, ref: str) -> None:
    with pytest.raises(BerthError):
        orc.get(ref)


def test_bad_orchestrator_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="storage"):
        Orchestrator(root=tmp_path, storage="zfs")
    with pytest.raises(ConfigError, match="runtime"):
        Orchestrator(root=tmp_path, runtime="docker")
    with pytest.raises(ConfigError, match="database_url"):
        Orchestrator(root=tmp_path, database_url="mysql://x/y")
    with pytest.raises(ConfigError, match="database_url"):
        Orchestrator(root=tmp_path, database_url="sqlite://")


def test_a_sqlite_url_in_a_missing_directory_is_refused_and_nothing_is_made(
        tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(ConfigError, match=r"database_url.*does not exist"):
        Orchestrator(root=tmp_path / "root", database_url=f"sqlite:///{missing / 'x.db'}")
    assert not (tmp_path / "nonexistent").exists()


def test_the_embedded_default_makes_its_data_root(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_DATABASE_URL", raising=False)
    root = tmp_path / "fresh" / "root"
    with Orchestrator(root=root, database_url=None) as orc:
        assert orc.list(all=True) == []
    assert (root / "berth.db").is_file()


def test_image_import_refuses_bad_names_and_files(orc: Orchestrator, tmp_path: Path,
                                                  root: Path, busybox_tar: Path) -> None:
    orc.storage.status()  # the driver's own directories exist from its first use on
    before = _tree(root)
    with pytest.raises(ConfigError, match="name"):
        orc.import_image("../evil", busybox_tar)
    with pytest.raises(ConfigError, match="tar_path"):
        orc.import_image("ok", tmp_path / "missing.tar")
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar file" * 100)
    with pytest.raises(BerthError, match="cannot unpack"):
        orc.import_image("junk", junk)
    assert orc.images() == [] and _tree(root) == before
