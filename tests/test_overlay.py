"""The overlay driver: layers stacked by overlayfs, their whiteouts overlayfs's own, and the merged
tree of an image the same as the vfs driver's copy of it."""

from __future__ import annotations

import io
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers import mounts
from drivers.errors import HostError
from drivers.image.apply import apply_layer
from drivers.storage import StorageDriver
from drivers.storage.overlay import OverlayDriver, overlay_unsupported
from drivers.storage.vfs import VfsDriver
from tests import handmade_layouts as made
from tests.oci_images import file_tree, tree_diff

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[OverlayDriver]:
    why_not = overlay_unsupported(tmp_path / "overlay")
    if why_not is not None:
        pytest.skip(why_not)
    overlay = OverlayDriver(tmp_path / "overlay")
    yield overlay
    for id in overlay.layers():
        overlay.remove(id)
    assert mounts.mounted_under(str(tmp_path)) == []


def _id(n: int) -> str:
    return f"{n:064x}"


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def _whiteout(path: Path) -> bool:
    info = path.lstat()
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


#: three layers: the second deletes a file and a directory and makes one opaque (its own file
#: kept), the third writes through a symlink, hard-links a lower file, and re-creates a name the
#: second deleted as a directory that must show nothing of the first's (the second's whiteout
#: below it sees to that)
CHAIN = [
    made.layer(made.directory("etc"), made.file("etc/passwd", b"root:x:0:0"),
               made.file("etc/gone", b"1"), made.directory("var"), made.directory("var/cache"),
               made.file("var/cache/a", b"a"), made.file("var/cache/b", b"b"),
               made.directory("usr"), made.directory("usr/lib"), made.file("usr/lib/libc", b"c"),
               made.symlink("lib", "usr/lib"), made.directory("old"),
               made.file("old/inside", b"o"), made.file("x", b"x")),
    made.layer(made.file(".wh.x"), made.file("etc/.wh.gone"), made.directory("var/cache"),
               made.file("var/cache/.wh..wh..opq"), made.file("var/cache/new", b"n"),
               made.file(".wh.old"), made.file("etc/hostname", b"h")),
    made.layer(made.file("lib/libm", b"m"), made.hardlink("etc/passwd-link", "etc/passwd"),
               made.directory("old"), made.file("old/fresh", b"f"),
               made.file("etc/.wh.hostname")),
]


def _build(storage: StorageDriver, layers: list[bytes]) -> list[str]:
    ids, parent = [], None
    for n, blob in enumerate(layers, start=1):
        id = _id(n)
        storage.create(id, parent)
        with storage.apply_target(id) as target:
            apply_layer(target.root, io.BytesIO(blob), whiteouts=target.whiteouts,
                        lowers=target.lowers)
        ids.append(id)
        parent = id
    return ids


def test_get_twice_put_twice_unmounts_once_and_a_base_layer_is_its_diff(
        driver: OverlayDriver) -> None:
    driver.create(_id(1), None)
    driver.create(_id(2), _id(1))
    assert driver.get(_id(1)) == str(driver.home / _id(1) / "diff")
    driver.put(_id(1))
    merged = driver.get(_id(2))
    assert merged == str(driver.home / _id(2) / "merged") and mounts.is_mounted(merged)
    assert driver.get(_id(2)) == merged
    driver.put(_id(2))
    assert mounts.is_mounted(merged)
    driver.put(_id(2))
    assert not mounts.is_mounted(merged)
    driver.put(_id(2))  # without a get: nothing
    assert driver.exists(_id(2)) and driver.layers() == [_id(1), _id(2)]
    link = (driver.home / _id(2) / "link").read_text()
    assert (driver.home / _id(2) / "lower").read_text() == \
        "l/" + (driver.home / _id(1) / "link").read_text()
    assert os.readlink(driver.home / "l" / link) == f"../{_id(2)}/diff"
    driver.remove(_id(2))
    driver.remove(_id(2))  # already removed
    assert not driver.exists(_id(2)) and not os.path.lexists(driver.home / "l" / link)
    rows = dict(driver.status())
    assert rows["Layers"] == "1" and rows["Supports d_type"] == "true"


def test_the_merged_chain_is_the_tree_vfs_makes_with_overlay_whiteouts_in_the_diffs(
        driver: OverlayDriver, tmp_path: Path) -> None:
    vfs = VfsDriver(tmp_path / "vfs")
    vfs_top = _build(vfs, CHAIN)[-1]
    top = _build(driver, CHAIN)[-1]
    merged = Path(driver.get(top))
    try:
        assert tree_diff(file_tree(Path(vfs.get(vfs_top))), file_tree(merged)) == []
    finally:
        driver.put(top)
    second = driver.home / _id(2) / "diff"
    assert _whiteout(second / "x") and _whiteout(second / "etc" / "gone")
    assert _whiteout(second / "old") and _opaque(second / "var" / "cache")
    third = driver.home / _id(3) / "diff"
    # written through the lower symlink lib -> usr/lib, the symlink left to the lower
    assert (third / "usr" / "lib" / "libm").read_bytes() == b"m"
    assert not (third / "lib").exists()
    assert (third / "etc" / "passwd").stat().st_ino == \
        (third / "etc" / "passwd-link").stat().st_ino
    assert _whiteout(third / "etc" / "hostname")


def test_an_overlay_layer_refuses_what_the_delete_mode_refuses(
        driver: OverlayDriver) -> None:
    from drivers.image.errors import UnsafeLayer

    driver.create(_id(1), None)
    with driver.apply_target(_id(1)) as target:
        apply_layer(target.root, io.BytesIO(made.layer(made.symlink("out", "/etc"))),
                    whiteouts=target.whiteouts, lowers=target.lowers)
    driver.create(_id(2), _id(1))
    with driver.apply_target(_id(2)) as target, pytest.raises(UnsafeLayer):
        apply_layer(target.root, io.BytesIO(made.layer(made.file("out/passwd"))),
                    whiteouts=target.whiteouts, lowers=target.lowers)
    with driver.apply_target(_id(2)) as target, pytest.raises(UnsafeLayer):
        apply_layer(target.root, io.BytesIO(made.layer(made.file("../escape"))),
                    whiteouts=target.whiteouts, lowers=target.lowers)


def test_a_containers_writes_stay_in_its_layer_and_its_removal_leaves_the_image_intact(
        driver: OverlayDriver) -> None:
    top = _build(driver, CHAIN)[-1]
    before = {id: file_tree(driver.home / id / "diff") for id in driver.layers()}
    one, two = "c" * 64, "d" * 64
    driver.create(one, top)
    driver.create(two, top)
    first, second = Path(driver.get(one)), Path(driver.get(two))
    (first / "etc" / "passwd").write_bytes(b"changed")
    (first / "written").write_bytes(b"w")
    (first / "usr" / "lib" / "libc").unlink()
    assert (second / "etc" / "passwd").read_bytes() == b"root:x:0:0"
    assert not (second / "written").exists() and (second / "usr" / "lib" / "libc").exists()
    driver.put(one)
    driver.put(two)
    driver.remove(one)
    image = Path(driver.get(top))
    try:
        assert not (image / "written").exists()
        assert (image / "etc" / "passwd").read_bytes() == b"root:x:0:0"
    finally:
        driver.put(top)
    assert {id: file_tree(driver.home / id / "diff") for id in before} == before


def test_a_chain_of_a_hundred_layers_mounts_with_short_links(driver: OverlayDriver) -> None:
    parent = None
    for n in range(1, 101):
        driver.create(_id(n), parent)
        (driver.home / _id(n) / "diff" / f"f{n}").write_bytes(b"%d" % n)
        parent = _id(n)
    assert len((driver.home / _id(100) / "lower").read_text()) < 1600
    merged = Path(driver.get(_id(100)))
    try:
        assert len(os.listdir(merged)) == 100
    finally:
        driver.put(_id(100))


def test_a_chain_past_the_page_of_mount_options_is_refused_when_created(
        driver: OverlayDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    import drivers.storage.overlay as overlay

    monkeypatch.setattr(overlay, "PAGE_SIZE", 200)
    parent = None
    with pytest.raises(HostError, match="mount options"):
        for n in range(1, 20):
            driver.create(_id(n), parent)
            parent = _id(n)
    assert not (driver.home / f"{_id(n)}.partial").exists()


def test_a_mount_left_by_a_dead_driver_is_released_by_remove(tmp_path: Path,
                                                             driver: OverlayDriver) -> None:
    driver.create(_id(1), None)
    driver.create(_id(2), _id(1))
    merged = driver.get(_id(2))
    fresh = OverlayDriver(driver.home)  # a new process: knows nothing of the mount
    assert mounts.is_mounted(merged)
    fresh.remove(_id(2))
    assert not mounts.is_mounted(merged) and fresh.layers() == [_id(1)]


def test_a_mount_made_by_another_process_is_released_by_its_put(driver: OverlayDriver) -> None:
    driver.create(_id(1), None)
    driver.create(_id(2), _id(1))
    merged = driver.get(_id(2))
    OverlayDriver(driver.home).put(_id(2))
    assert not mounts.is_mounted(merged)


def test_a_layer_another_process_unmounted_is_mounted_again_by_the_next_get(
        driver: OverlayDriver) -> None:
    # a container started here, stopped by another berth process, started here again
    driver.create(_id(1), None)
    driver.create(_id(2), _id(1))
    (driver.home / _id(1) / "diff" / "bin").mkdir()
    merged = driver.get(_id(2))
    OverlayDriver(driver.home).put(_id(2))
    assert driver.get(_id(2)) == merged and os.listdir(merged) == ["bin"]
    driver.put(_id(2))
    assert not mounts.is_mounted(merged)


def test_layers_list_partial_layers_apart_from_the_links_and_remove_finishes_them(
        driver: OverlayDriver) -> None:
    driver.create(_id(1), None)
    driver.create(_id(2), _id(1))
    # a create that died after its link, before its rename
    partial = driver.home / f"{_id(3)}.partial"
    (partial / "diff").mkdir(parents=True)
    (partial / "link").write_text("ABCDEFGHIJKL")
    os.symlink(f"../{_id(3)}/diff", driver.home / "l" / "ABCDEFGHIJKL")
    # a remove that died after its rename
    os.replace(driver.home / _id(2), driver.home / f"{_id(2)}.partial")
    # listed, so that gc and recovery see them; not whole, so not there for anyone else
    assert driver.layers() == [_id(1), _id(2), _id(3)]
    assert not driver.exists(_id(3)) and not driver.exists(_id(2))
    driver.remove(_id(3))
    driver.remove(_id(2))
    assert sorted(os.listdir(driver.home)) == [_id(1), "l"]
    assert os.listdir(driver.home / "l") == [(driver.home / _id(1) / "link").read_text()]


def test_the_checks_say_why_overlay_cannot_be_used(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import drivers.storage.overlay as overlay

    started = time.monotonic()
    assert overlay_unsupported(tmp_path / "here") is None
    assert time.monotonic() - started < 2
    assert os.listdir(tmp_path / "here") == []
    monkeypatch.setattr(overlay, "supports_d_type", lambda directory: False)
    assert "d_type" in (overlay_unsupported(tmp_path / "here") or "")
    monkeypatch.setattr(overlay, "_kernel_has_overlay", lambda: False)
    assert "no overlayfs" in (overlay_unsupported(tmp_path / "here") or "")


BASE = made.layer(made.directory("d"), made.file("d/a", b"a"), made.directory("d/sub"),
                  made.file("d/sub/b", b"b"), made.file("f", b"f"), made.directory("e"),
                  made.file("e/c", b"c"), made.symlink("s", "d"))
#: second layers whose whiteouts meet their own entries, in every order
TRICKY = {
    "whiteout then a directory of the same name": made.layer(
        made.file(".wh.d"), made.directory("d"), made.file("d/new", b"n")),
    "a directory then its whiteout": made.layer(
        made.directory("d"), made.file("d/new", b"n"), made.file(".wh.d")),
    "whiteout then entries below the name, without its directory": made.layer(
        made.file(".wh.d"), made.file("d/new", b"n")),
    "an opaque directory holding a lower subdirectory of its own": made.layer(
        made.directory("d"), made.file("d/.wh..wh..opq"), made.file("d/sub/new", b"n")),
    "an opaque root": made.layer(made.file("kept", b"k"), made.directory("e"),
                                 made.file(".wh..wh..opq"), made.file("e/new", b"n")),
    "a whiteout of nothing and of a path through a symlink": made.layer(
        made.file(".wh.missing"), made.file("s/.wh.a")),
    "a file over a lower directory, a directory over a lower file": made.layer(
        made.file("e", b"now a file"), made.directory("f"), made.file("f/in", b"i")),
    "a hard link to a lower file, then the file whited out": made.layer(
        made.hardlink("kept-a", "d/a"), made.file("d/.wh.a")),
}


@pytest.mark.parametrize("case", TRICKY)
def test_whiteouts_meeting_the_layers_own_entries_merge_as_vfs_deletes(
        driver: OverlayDriver, tmp_path: Path, case: str) -> None:
    vfs = VfsDriver(tmp_path / "vfs")
    vfs_top = _build(vfs, [BASE, TRICKY[case]])[-1]
    top = _build(driver, [BASE, TRICKY[case]])[-1]
    try:
        assert tree_diff(file_tree(Path(vfs.get(vfs_top))),
                         file_tree(Path(driver.get(top)))) == []
    finally:
        driver.put(top)
TRICKY["a whiteout below a directory, then of the directory"] = made.layer(
    made.file("d/.wh.a"), made.file(".wh.d"))
TRICKY["an opaque root over copied-up directories"] = made.layer(
    made.file("d/sub/.wh.b"), made.hardlink("e/link", "e/c"), made.file(".wh..wh..opq"))


def test_a_trial_mount_killed_midway_is_undone_by_the_next_trial(tmp_path: Path) -> None:
    here = tmp_path / "here"
    killed = subprocess.run(
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from drivers.storage.overlay import overlay_unsupported; "
         "overlay_unsupported(Path(sys.argv[1]))", str(here)],
        env={**os.environ, "BERTH_CRASH_AT": "overlay.probe_mounted"}, cwd=REPO,
        capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert mounts.mounted_under(str(here)) != []
    OverlayDriver(here)  # opening the driver there finishes the trial's undoing
    assert mounts.mounted_under(str(here)) == [] and os.listdir(here) == ["l"]


def _berth(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BERTH_ROOT": str(root)}
    env.pop("BERTH_DATABASE_URL", None)
    return subprocess.run(["berth", *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_new_data_root_gets_overlay_and_keeps_it(tmp_path: Path) -> None:
    status = _berth(tmp_path / "root", "pool", "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == "Storage Driver: overlay"
    assert any(line.split()[:3] == ["Supports", "d_type", "true"] for line in lines), lines
    asked = _berth(tmp_path / "root", "--storage", "vfs", "pool", "status")
    assert asked.returncode == 0 and asked.stdout.startswith("Storage Driver: vfs")


def test_a_data_root_on_an_overlayfs_gets_vfs_and_the_reason(tmp_path: Path) -> None:
    # berth run inside a container: its data root on the container's own overlay
    for part in ("lower", "upper", "work", "merged"):
        (tmp_path / part).mkdir()
    merged = str(tmp_path / "merged")
    mounts.mount_data("overlay", merged, "overlay",
                      f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,"
                      f"workdir={tmp_path}/work")
    try:
        status = _berth(tmp_path / "merged" / "root", "pool", "status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("Storage Driver: vfs\n")
        assert re.search(r"Not Overlay Because +the filesystem of \S+ \(overlay\) does not take "
                         r"overlay whiteouts", status.stdout), status.stdout
        refused = _berth(tmp_path / "merged" / "root2", "--storage", "overlay", "pool", "status")
        assert refused.returncode != 0
        assert "storage" in refused.stderr and "overlay whiteouts" in refused.stderr
        assert mounts.mounted_under(merged) == [merged]  # no trial mount left inside
    finally:
        mounts.unmount(merged)


def test_gc_removes_layers_no_row_owns_their_mounts_and_half_made_ones(tmp_path: Path) -> None:
    from fsm import Orchestrator

    home = tmp_path / "root" / "overlay"
    with Orchestrator(root=tmp_path / "root", storage="overlay") as orc:
        storage = orc.storage
        # made outside berth's records: a chain with a mount, and a create cut short
        storage.create(_id(1), None)
        storage.create(_id(2), _id(1))
        merged = storage.get(_id(2))
        (home / f"{_id(3)}.partial" / "diff").mkdir(parents=True)
        assert orc.gc()["layer"] == [_id(1), _id(2), _id(3)]
        assert mounts.is_mounted(merged)  # only reported
        assert orc.gc(remove=True)["layer"] == [_id(1), _id(2), _id(3)]
        assert mounts.mounted_under(str(tmp_path)) == []
        assert os.listdir(home) == ["l"] and os.listdir(home / "l") == []
        assert orc.gc() == {key: [] for key in orc.gc()}


ACCOUNTS_BASE = made.layer(made.directory("etc"), made.file("etc/passwd", b"root:x:0:0::/:/\n"),
                           made.file("etc/group", b"root:x:0:\n"))
#: a top layer over ACCOUNTS_BASE and a middle layer that adds nothing to /etc
ACCOUNTS_TOPS = {
    "nothing of /etc": made.layer(made.file("other", b"o")),
    "a new passwd": made.layer(made.directory("etc"), made.file("etc/passwd", b"app:x:1:1\n")),
    "passwd deleted": made.layer(made.directory("etc"), made.file("etc/.wh.passwd")),
    "/etc deleted": made.layer(made.file(".wh.etc")),
    "/etc opaque with a group": made.layer(made.directory("etc"),
                                           made.file("etc/.wh..wh..opq"),
                                           made.file("etc/group", b"app:x:1:\n")),
    "/etc a symlink": made.layer(made.file(".wh.etc"), made.symlink("etc", "/etc")),
}


@pytest.mark.parametrize("top", ACCOUNTS_TOPS)
def test_accounts_read_unmounted_are_what_the_mounted_overlay_shows(
        driver: OverlayDriver, top: str) -> None:
    from drivers.image.accounts import read_accounts

    ids = _build(driver, [ACCOUNTS_BASE, made.layer(made.file("middle")), ACCOUNTS_TOPS[top]])
    with driver.apply_target(ids[-1]) as tree:
        unmounted = read_accounts(tree.root, tree.lowers)
    try:
        mounted = read_accounts(driver.get(ids[-1]))
    finally:
        driver.put(ids[-1])
    assert unmounted == mounted
    if top == "/etc a symlink":  # never followed to the host's /etc
        assert unmounted == {"passwd": "", "group": ""}
