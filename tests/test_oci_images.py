"""The image tooling of tests/oci_images.py against the real tools: the layers buildah commits,
what the exported layer tars hold, what podman makes of each export, the local registry."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path

import pytest

from tests.oci_images import (
    ABSOLUTE_SYMLINK,
    DELETED_FILE,
    EMPTY_DIR,
    FIFO,
    HARDLINKS,
    MOTD,
    OLD_FILE,
    OLD_MTIME,
    OPAQUE_DIR,
    OPAQUE_NEW,
    OWNED_FILE,
    RELATIVE_SYMLINK,
    SETUID_FILE,
    XATTR,
    XATTR_FILE,
    BuiltImage,
    Entry,
    Registry,
    build_sibling_image,
    file_tree,
    oci_layout_layers,
    oci_layout_manifest,
    podman_tree,
    push_to_registry,
    to_docker_archive,
    to_oci_archive,
    to_oci_layout,
    tree_diff,
)


@pytest.fixture(scope="module")
def layout(test_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return to_oci_layout(test_image, tmp_path_factory.mktemp("layout") / "oci")


@pytest.fixture(scope="module")
def tree(test_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Entry]:
    """Podman's tree of the image loaded from an OCI archive."""
    work = tmp_path_factory.mktemp("podman-oci-archive")
    return podman_tree(to_oci_archive(test_image, work / "image.tar"), work)


@pytest.mark.root
def test_the_image_has_three_layers_and_its_config(test_image: BuiltImage) -> None:
    config = test_image.inspect()
    assert len(test_image.diff_ids) == 3
    assert len(set(test_image.diff_ids)) == 3
    assert tuple(config["rootfs"]["diff_ids"]) == test_image.diff_ids  # type: ignore[index]
    settings = config["config"]
    assert isinstance(settings, dict)
    expected = test_image.config
    assert settings["Entrypoint"] == list(expected.entrypoint)
    assert settings["Cmd"] == list(expected.cmd)
    assert settings["Env"] == list(expected.env)
    assert settings["WorkingDir"] == "/work"
    assert settings["User"] == "app"
    assert settings["StopSignal"] == "SIGQUIT"
    assert set(settings["ExposedPorts"]) == {"8080/tcp"}
    assert settings["Labels"].items() >= expected.labels.items()


@pytest.mark.root
def test_the_layer_tars_hold_a_whiteout_and_an_opaque_marker(test_image: BuiltImage,
                                                              layout: Path) -> None:
    manifest = oci_layout_manifest(layout, test_image.tag)
    assert manifest["config"]["digest"] == f"sha256:{test_image.image_id}"
    layers = oci_layout_layers(layout, test_image.tag)
    assert len(layers) == 3
    names = [{member.name.rstrip("/") for member in layer} for layer in layers]
    assert DELETED_FILE in names[0]
    assert {"opaque/old-1", "opaque/sub/old-3"} <= names[0]
    assert f".wh.{DELETED_FILE}" in names[2]
    if not test_image.opaque_whiteout:
        pytest.skip("the vfs storage driver commits no opaque directories")
    assert f"{OPAQUE_DIR}/.wh..wh..opq" in names[2]
    assert {name for name in names[2] if name.startswith(f"{OPAQUE_DIR}/")} == {
        f"{OPAQUE_DIR}/.wh..wh..opq", *OPAQUE_NEW}
    assert not any(".wh." in name for name in names[0] | names[1])


@pytest.mark.root
def test_the_layer_tars_hold_the_special_files(test_image: BuiltImage, layout: Path) -> None:
    members = {member.name.rstrip("/"): member
               for member in oci_layout_layers(layout, test_image.tag)[1]}
    assert members[ABSOLUTE_SYMLINK[0]].linkname == ABSOLUTE_SYMLINK[1]
    assert members[RELATIVE_SYMLINK[0]].linkname == RELATIVE_SYMLINK[1]
    assert {members[path].kind for path in HARDLINKS} == {"file", "hardlink"}
    assert members[SETUID_FILE].mode == 0o4755
    assert (members[OWNED_FILE].uid, members[OWNED_FILE].gid) == (1000, 1000)
    assert members[FIFO].kind == "fifo"
    assert members[EMPTY_DIR].kind == "dir"


@pytest.mark.root
def test_podman_sees_the_layers_applied(test_image: BuiltImage, tree: dict[str, Entry]) -> None:
    assert DELETED_FILE not in tree
    assert {path for path in tree if path.startswith(f"{OPAQUE_DIR}/")} == set(OPAQUE_NEW)
    assert tree["etc/motd"].size == len(MOTD)
    assert tree["bin/busybox"].kind == "file"
    assert tree["bin/sh"] == Entry(kind="symlink", mode=0o777, uid=0, gid=0, target="busybox",
                                   mtime=tree["bin/sh"].mtime)
    assert tree[ABSOLUTE_SYMLINK[0]].target == ABSOLUTE_SYMLINK[1]
    assert tree[RELATIVE_SYMLINK[0]].target == RELATIVE_SYMLINK[1]
    suid = tree[SETUID_FILE]
    assert (suid.mode, suid.uid) == (stat.S_ISUID | 0o755, 0)
    assert tree[HARDLINKS[0]].hardlink == tree[HARDLINKS[1]].hardlink == HARDLINKS[0]
    assert tree["etc/passwd"].hardlink is None
    assert (tree[OWNED_FILE].uid, tree[OWNED_FILE].gid) == (1000, 1000)
    assert tree[OLD_FILE].mtime == OLD_MTIME
    assert tree[EMPTY_DIR].kind == "dir"
    assert not any(path.startswith(f"{EMPTY_DIR}/") for path in tree)
    assert tree[FIFO].kind == "fifo"
    assert tree["work"].kind == "dir"
    assert tree["tmp"].mode == 0o1777
    if test_image.user_xattrs:
        assert tree[XATTR_FILE].xattrs == (XATTR,)


@pytest.mark.root
def test_podman_reads_the_same_tree_from_every_export(
        test_image: BuiltImage, tree: dict[str, Entry], layout: Path, registry: Registry,
        tmp_path: Path) -> None:
    docker = podman_tree(to_docker_archive(test_image, tmp_path / "docker.tar"), tmp_path)
    assert tree_diff(tree, docker) == []
    assert tree_diff(tree, podman_tree(layout, tmp_path)) == []
    pulled = podman_tree(push_to_registry(test_image, registry), tmp_path)
    assert tree_diff(tree, pulled) == []


@pytest.mark.root
def test_the_registry_serves_a_pushed_image(test_image: BuiltImage, registry: Registry) -> None:
    reference = push_to_registry(test_image, registry, "pushed/berth-test:v1")
    assert reference == f"{registry.host}/pushed/berth-test:v1"
    inspected = json.loads(test_image.storage.skopeo(
        "inspect", "--tls-verify=false", f"docker://{reference}"))
    assert inspected["Layers"]
    raw = json.loads(test_image.storage.skopeo(
        "inspect", "--tls-verify=false", "--config", f"docker://{reference}"))
    assert tuple(raw["rootfs"]["diff_ids"]) == test_image.diff_ids
    with urllib.request.urlopen(f"{registry.url}/v2/pushed/berth-test/tags/list",
                                timeout=10) as response:
        assert json.load(response) == {"name": "pushed/berth-test", "tags": ["v1"]}


@pytest.mark.root
def test_the_sibling_shares_the_two_lower_layers(test_image: BuiltImage) -> None:
    sibling = build_sibling_image(test_image)
    assert sibling.diff_ids[:2] == test_image.diff_ids[:2]
    assert len(sibling.diff_ids) == 3
    assert sibling.diff_ids[2] != test_image.diff_ids[2]
    assert sibling.image_id != test_image.image_id
    assert sibling.inspect()["config"]["Cmd"] == ["sibling"]  # type: ignore[index]


def test_tree_diff_names_each_difference(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/file").write_text("one")
    (tmp_path / "a/gone").write_text("x")
    before = file_tree(tmp_path / "a")
    (tmp_path / "a/file").write_text("two")
    (tmp_path / "a/file").chmod(0o600)
    (tmp_path / "a/gone").unlink()
    (tmp_path / "a/link").symlink_to("file")
    (tmp_path / "a/hard").hardlink_to(tmp_path / "a/file")
    after = file_tree(tmp_path / "a", ignore={"hard"})
    lines = tree_diff(before, after)
    assert "only in first: gone" in lines
    assert "only in second: link" in lines
    assert "file: mode 0o644 != 0o600" in lines
    assert any(line.startswith("file: sha256 ") for line in lines)
    assert "hard" not in after
    assert after["file"].hardlink is None
    assert file_tree(tmp_path / "a")["hard"].hardlink == "file"
