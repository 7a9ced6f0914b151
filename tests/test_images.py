"""Layered images for real: built by buildah, exported as a docker archive, an OCI archive and an
OCI layout, pushed to Debian's docker-registry; loaded and pulled by berth onto chains of
storage layers, compared with what podman makes of the same image, and broken on purpose."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fsm import BerthError, ConfigError, Orchestrator
from fsm.errors import ImageInUse, NoSuchImage
from tests import handmade_layouts as made
from tests.hostcheck import mounts_under
from tests.oci_images import (
    BuiltImage,
    Entry,
    Registry,
    build_sibling_image,
    file_tree,
    podman_tree,
    push_to_registry,
    to_docker_archive,
    to_oci_archive,
    to_oci_layout,
    tree_diff,
)

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["overlay", "vfs"])
def storage(request: pytest.FixtureRequest, host_storage: str) -> str:
    """Every image test on overlay and on vfs (on devicemapper: ``tests/dm/test_images.py``)."""
    if request.param == "overlay" and host_storage != "overlay":
        pytest.skip("overlay cannot stack layers on this host (berth pool status says why)")
    return str(request.param)
SOURCES = ["docker-archive", "oci-archive", "oci-layout", "registry"]
#: the root directory of a tree is in no layer tar: each storage gives it its own mode
IGNORED = frozenset({"."})


@pytest.fixture(scope="module")
def exports(test_image: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("exports")
    return {"docker-archive": to_docker_archive(test_image, work / "image.docker.tar"),
            "oci-archive": to_oci_archive(test_image, work / "image.oci.tar"),
            "oci-layout": to_oci_layout(test_image, work / "layout")}


@pytest.fixture(scope="module")
def pushed(test_image: BuiltImage, registry: Registry) -> str:
    return push_to_registry(test_image, registry)


@pytest.fixture(scope="module")
def podman_view(exports: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, Entry]:
    return podman_tree(exports["docker-archive"], tmp_path_factory.mktemp("podman"))


def _get(orc: Orchestrator, source: str, exports: dict[str, Path], pushed: str) -> str:
    if source == "registry":
        return orc.pull(pushed, tls_verify=False).name
    (loaded,) = orc.load(exports[source])
    return loaded.name


def assert_nothing_of_images(orc: Orchestrator) -> None:
    """No image row, no layer row, no storage layer, no scratch directory."""
    assert orc.images() == []
    assert orc.db.layers.on_node(orc.host.settings.node) == []
    assert orc.storage.layers() == []
    assert_driver_holds_only_its_layers(orc)
    scratch = orc.host.settings.scratch_dir
    assert not scratch.exists() or list(scratch.iterdir()) == []


def assert_driver_holds_only_its_layers(orc: Orchestrator) -> None:
    """overlay: a directory per layer (no ``.partial`` one, no probe) and one short link each,
    none dangling; no mount under the data root (nothing runs in these tests)."""
    assert mounts_under(orc.host.settings.root) == []
    if orc.storage.name != "overlay":
        return
    home = orc.host.settings.root / "overlay"
    layers = orc.storage.layers()
    assert sorted(os.listdir(home)) == sorted([*layers, "l"])
    links = {os.readlink(link) for link in (home / "l").iterdir()}
    assert links == {f"../{layer}/diff" for layer in layers}


def assert_layers_agree(orc: Orchestrator) -> None:
    """Every layer row is ready and held by the driver, and the driver holds nothing else."""
    rows = orc.db.layers.on_node(orc.host.settings.node)
    assert all(row.state == "ready" for row in rows), rows
    assert sorted(row.id for row in rows) == sorted(orc.storage.layers())
    assert_driver_holds_only_its_layers(orc)
    for image in orc.images():
        assert orc.db.layers.get(orc.host.settings.node, image.top_layer) is not None


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_gives_podmans_tree_and_the_images_config(
        orc: Orchestrator, source: str, exports: dict[str, Path], pushed: str,
        podman_view: dict[str, Entry], test_image: BuiltImage) -> None:
    name = _get(orc, source, exports, pushed)
    image = orc.image(name)
    assert image.id == test_image.image_id
    assert image.diff_ids == list(test_image.diff_ids)
    container = orc.create(name, network_mode="none")
    try:
        tree = file_tree(Path(orc.storage.get(container.id)))
    finally:
        orc.storage.put(container.id)
    assert tree_diff(
        {k: v for k, v in podman_view.items() if k not in IGNORED},
        {k: v for k, v in tree.items() if k not in IGNORED}) == []
    orc.start(container.id)
    assert orc.wait(container.id, timeout=30) == 0
    assert orc.log_text(container.id) == "from-entrypoint default-cmd\n"
    assert_layers_agree(orc)


def test_the_process_runs_as_the_images_user_in_its_directory_with_its_env(
        orc: Orchestrator, exports: dict[str, Path]) -> None:
    (image,) = orc.load(exports["oci-layout"])
    script = 'id -u; id -g; id -G; pwd; echo "$FOO $HOME"'
    container = orc.create(image.name, [script], entrypoint=["/bin/sh", "-c"],
                           env={"EXTRA": "1"}, network_mode="none")
    orc.start(container.id)
    assert orc.wait(container.id, timeout=30) == 0
    assert orc.log_text(container.id) == "1000\n1000\n1000 2000\n/work\nbar /home/app\n"
    as_root = orc.create(image.name, ["id -u; id -G"], entrypoint=["/bin/sh", "-c"],
                         user="root", network_mode="none")
    orc.start(as_root.id)
    assert orc.wait(as_root.id, timeout=30) == 0
    assert orc.log_text(as_root.id) == "0\n0\n"
    # a command replaces Cmd and keeps the entrypoint
    echo = orc.create(image.name, ["given"], network_mode="none")
    orc.start(echo.id)
    orc.wait(echo.id, timeout=30)
    assert orc.log_text(echo.id) == "from-entrypoint given\n"


def test_an_unknown_user_is_refused_before_anything_is_made(
        orc: Orchestrator, exports: dict[str, Path]) -> None:
    (image,) = orc.load(exports["oci-layout"])
    layers_before = sorted(orc.storage.layers())
    with pytest.raises(ConfigError, match="user='nobody-here'"):
        orc.create(image.name, user="nobody-here", network_mode="none")
    assert orc.list(all=True) == []
    assert sorted(orc.storage.layers()) == layers_before


def test_stop_sends_the_images_stop_signal(orc: Orchestrator, exports: dict[str, Path]) -> None:
    (image,) = orc.load(exports["oci-layout"])
    # the image's StopSignal is SIGQUIT: only it runs the trap (SIGTERM would end sh with 143)
    container = orc.create(image.name, ["trap 'exit 7' QUIT; while true; do sleep 0.1; done"],
                           entrypoint=["/bin/sh", "-c"], user="root", network_mode="none")
    orc.start(container.id)
    assert orc.stop(container.id, timeout=20).exit_code == 7
    kills = [e for e in orc.events(container=container.id) if e.action == "kill"]
    assert [e.attributes["signal"] for e in kills] == ["SIGQUIT"]


def test_two_images_share_their_lower_layers_until_the_last_one_goes(
        orc: Orchestrator, test_image: BuiltImage, exports: dict[str, Path],
        tmp_path: Path) -> None:
    sibling = build_sibling_image(test_image)
    (first,) = orc.load(exports["oci-layout"])
    (second,) = orc.load(to_oci_layout(sibling, tmp_path / "sibling"))
    assert first.diff_ids[:2] == second.diff_ids[:2] and first.top_layer != second.top_layer
    node = orc.host.settings.node
    image_layers = [r for r in orc.db.layers.on_node(node) if r.kind == "image"]
    assert len(image_layers) == 4  # three, and the sibling's own top
    shared = orc.db.layers.get(node, _chain(orc, first)[1])
    assert shared is not None and shared.refs == 2
    one, two = (orc.create(i.name, network_mode="none") for i in (first, second))
    with pytest.raises(ImageInUse):
        orc.remove_image(first.name)
    orc.remove(one.id)
    assert orc.remove_image(first.name) == [f"Untagged: {first.name}",
                                            f"Deleted: sha256:{first.id}"]
    # the first image's top went; the shared ones stay under the sibling
    assert sorted(r.id for r in orc.db.layers.on_node(node) if r.kind == "image") == sorted(
        _chain(orc, second))
    orc.remove(two.id)
    orc.remove_image(second.name)
    assert_nothing_of_images(orc)


def _chain(orc: Orchestrator, image: object) -> list[str]:
    from fsm.images.chain import chain_ids

    return chain_ids(image.diff_ids)  # type: ignore[attr-defined]


def test_an_image_imported_twice_has_two_names_and_rmi_untags_first(
        orc: Orchestrator, busybox_tar: Path) -> None:
    a = orc.import_image("box-a", busybox_tar)
    b = orc.import_image("box-b", busybox_tar)
    assert a.id == b.id and orc.image("box-a").names == ("box-a:latest", "box-b:latest")
    assert orc.remove_image("box-a") == ["Untagged: box-a:latest"]
    assert orc.image("box-b").names == ("box-b:latest",)
    with pytest.raises(NoSuchImage):
        orc.image("box-a")
    orc.remove_image("box-b")
    assert_nothing_of_images(orc)


def test_a_name_given_to_a_new_image_leaves_the_old_one_dangling_for_prune(
        orc: Orchestrator, tmp_path: Path) -> None:
    old = orc.load(made.write_layout(tmp_path / "old", [made.layer(made.file("a", b"1"))]))[0]
    new = orc.load(made.write_layout(tmp_path / "new", [made.layer(made.file("a", b"2"))]))[0]
    assert new.names == ("localhost/made:1",) and orc.image(old.id).names == ()
    assert [i.id for i in orc.prune_images()] == [old.id]
    assert [i.id for i in orc.images()] == [new.id]
    assert [i.id for i in orc.prune_images(all=True)] == [new.id]
    assert_nothing_of_images(orc)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


BAD_LAYERS = {
    "a ../ entry": [made.layer(made.file("../escaped-by-berth-test"))],
    "an absolute symlink then a file through it": [made.layer(
        made.symlink("out", "/tmp"), made.file("out/escaped-by-berth-test"))],
    "a hardlink to a path outside": [made.layer(
        made.hardlink("passwd-link", "../../../../../../etc/passwd"))],
}


@pytest.mark.parametrize("case", [*BAD_LAYERS, "a blob whose digest does not match",
                                  "a manifest for another architecture"])
def test_a_bad_layout_is_refused_and_leaves_nothing(orc: Orchestrator, tmp_path: Path,
                                                    case: str) -> None:
    good = made.layer(made.directory("etc"), made.file("etc/hostname", b"x\n"))
    if case in BAD_LAYERS:
        layout = made.write_layout(tmp_path / "bad", [good, *BAD_LAYERS[case]])
    elif case == "a blob whose digest does not match":
        layout = made.write_layout(tmp_path / "bad", [good, good + b""], lie_about=1)
    else:
        layout = made.write_layout(tmp_path / "bad", [good], architecture="arm64")
    with pytest.raises(BerthError) as raised:
        orc.load(layout)
    assert str(raised.value)
    assert_nothing_of_images(orc)
    assert not Path("/tmp/escaped-by-berth-test").exists()
    assert not (tmp_path / "escaped-by-berth-test").exists()


def test_a_truncated_archive_is_refused_and_leaves_nothing(
        orc: Orchestrator, exports: dict[str, Path], tmp_path: Path) -> None:
    whole = exports["docker-archive"].read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BerthError):
        orc.load(truncated)
    assert_nothing_of_images(orc)


def test_an_unknown_reference_and_a_registry_that_is_down(
        orc: Orchestrator, registry: Registry) -> None:
    with pytest.raises(BerthError, match="nosuch"):
        orc.pull(f"{registry.host}/nosuch:1", tls_verify=False)
    with pytest.raises(BerthError, match="connection refused"):
        orc.pull(f"127.0.0.1:{_free_port()}/x:1", tls_verify=False)
    with pytest.raises(ConfigError, match="reference"):
        orc.pull("Not A Reference", tls_verify=False)
    assert_nothing_of_images(orc)


LOAD_POINTS = ["image.after_copy", "image.after_claim_layer", "overlay.before_rename",
               "layer.after_create", "layer.after_fill", "image.reading_accounts",
               "image.before_commit", "image.after_commit"]
REMOVAL_POINTS = ["layer.after_claim_removal", "overlay.after_unmount", "overlay.after_rename",
                  "overlay.after_unlink", "layer.after_remove"]
CREATE_POINTS = ["overlay.before_rename", "layer.after_create", "create.after_layer",
                 "create.after_insert"]


def _crash(orc: Orchestrator, database_url: str, operation: str, argument: str,
           point: str) -> None:
    """Run the operation in a process of its own that SIGKILLs itself at ``point``."""
    storage, root = orc.storage.name, orc.host.settings.root
    if point.startswith("overlay.") and storage != "overlay":
        pytest.skip(f"{point} is a point of the overlay driver")
    result = subprocess.run(
        [sys.executable, "-m", "tests.crash_driver", str(root), database_url, operation,
         argument], env={**os.environ, "BERTH_CRASH_AT": point, "BERTH_STORAGE": storage},
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, (
        f"the process did not die at {point}: exit {result.returncode}\n{result.stderr}")


@pytest.mark.parametrize("point", LOAD_POINTS)
def test_a_load_killed_at_any_point_leaves_nothing_half_made(
        orc: Orchestrator, root: Path, database_url: str, exports: dict[str, Path],
        point: str) -> None:
    _crash(orc, database_url, "load", str(exports["docker-archive"]), point)
    orc.recover()
    assert_layers_agree(orc)
    if point == "image.after_commit":
        assert [i.name for i in orc.images()] == ["localhost/berth-test:latest"]
    else:
        assert_nothing_of_images(orc)
    # and the load goes through afterwards
    (image,) = orc.load(exports["docker-archive"])
    assert_layers_agree(orc)
    orc.remove_image(image.name)
    assert_nothing_of_images(orc)


@pytest.mark.parametrize("point", ["image.during_copy", "layer.after_fill"])
def test_a_pull_killed_while_copying_or_applying_leaves_nothing_half_made(
        orc: Orchestrator, root: Path, database_url: str, pushed: str, point: str) -> None:
    _crash(orc, database_url, "pull", pushed, point)
    assert orc.host.settings.scratch_dir.exists()
    # skopeo dies with the berth that ran it: nothing keeps writing into the scratch directory
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(root)):
        assert time.monotonic() < deadline, _processes_mentioning(str(root))
        time.sleep(0.05)
    if point == "image.during_copy":
        # killed at its first blob, skopeo never got to write the layout's index
        assert list(orc.host.settings.scratch_dir.glob("*/index.json")) == []
    orc.recover()
    assert_nothing_of_images(orc)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command and "pytest" not in command:
            found.append(f"{pid}: {command}")
    return found


@pytest.mark.parametrize("point", REMOVAL_POINTS)
def test_an_image_removal_killed_at_any_point_is_finished_by_recovery(
        orc: Orchestrator, root: Path, database_url: str, exports: dict[str, Path],
        point: str) -> None:
    (image,) = orc.load(exports["oci-layout"])
    _crash(orc, database_url, "rmi", image.name, point)
    orc.recover()
    assert_nothing_of_images(orc)


@pytest.mark.parametrize("point", CREATE_POINTS)
def test_a_create_killed_at_any_point_leaves_no_orphan_layer(
        orc: Orchestrator, root: Path, database_url: str, exports: dict[str, Path],
        point: str) -> None:
    (image,) = orc.load(exports["oci-layout"])
    _crash(orc, database_url, "create", image.name, point)
    orc.recover()
    assert_layers_agree(orc)
    containers = orc.list(all=True)
    assert len(containers) == (1 if point == "create.after_insert" else 0)
    for container in containers:
        orc.remove(container.id)
    orc.remove_image(image.name)
    assert_nothing_of_images(orc)


def _berth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["berth", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_cli_pulls_loads_lists_runs_inspects_and_removes(
        orc: Orchestrator, root: Path, database_url: str, exports: dict[str, Path],
        pushed: str) -> None:
    env = {**os.environ, "BERTH_ROOT": str(root), "BERTH_DATABASE_URL": database_url}
    pulled = _berth(env, "pull", "--tls-verify=false", pushed)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.startswith(f"{pushed}: sha256:")
    assert "applied" in pulled.stderr  # a plain line per layer off a terminal
    loaded = _berth(env, "image", "load", "-i", str(exports["oci-archive"]))
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout == "Loaded image: localhost/berth-test:latest\n"
    assert "already exists" in loaded.stderr
    listed = _berth(env, "images")
    assert "localhost/berth-test" in listed.stdout and "latest" in listed.stdout
    ran = _berth(env, "run", "--rm", "--network", "none", "localhost/berth-test")
    assert (ran.returncode, ran.stdout) == (0, "from-entrypoint default-cmd\n"), ran.stderr
    inspected = _berth(env, "image", "inspect", "localhost/berth-test")
    assert '"User": "app"' in inspected.stdout and '"StopSignal": "SIGQUIT"' in inspected.stdout
    removed = _berth(env, "rmi", pushed)
    assert removed.stdout == f"Untagged: {pushed}\n", removed.stderr
    removed = _berth(env, "rmi", "localhost/berth-test:latest")
    assert removed.returncode == 0 and "Deleted: sha256:" in removed.stdout
    missing = _berth(env, "rmi", "localhost/berth-test:latest")
    assert missing.returncode == 1 and "no image named" in missing.stderr
    assert_nothing_of_images(orc)


def test_a_pull_by_digest_names_the_image_by_that_digest(
        orc: Orchestrator, pushed: str, test_image: BuiltImage) -> None:
    inspected = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{pushed}"],
                               capture_output=True, text=True, timeout=60, check=True)
    digest = json.loads(inspected.stdout)["Digest"]
    by_digest = f"{pushed.rpartition(':')[0]}@{digest}"
    image = orc.pull(by_digest, tls_verify=False)
    assert (image.id, image.names, image.repo_digest) == (test_image.image_id, (by_digest,),
                                                         digest)
    assert orc.image(by_digest).id == image.id
