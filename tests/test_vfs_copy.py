"""The vfs driver's copy of a layer is the copy ``cp -a`` makes, and independent of its
source."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from drivers.storage.vfs import VfsDriver, copy_tree

pytestmark = pytest.mark.root


def _tree(root: Path) -> Path:
    """A layer with one of everything a root filesystem may hold."""
    tree = root / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "empty").mkdir(mode=0o555)
    data = tree / "bin" / "tool"
    data.write_bytes(os.urandom(70_000))
    os.chmod(data, 0o4755)  # set-uid: must survive the chown
    os.chown(data, 0, 0)
    os.link(data, tree / "bin" / "tool-again")
    (tree / "bin" / "sh").symlink_to("tool")
    os.lchown(tree / "bin" / "sh", 1, 2)
    os.symlink("/nowhere", tree / "dangling")
    os.mkfifo(tree / "fifo", 0o620)
    os.mknod(tree / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    ping = tree / "ping"
    ping.write_bytes(b"\x7fELF")
    os.chown(ping, 1000, 1000)
    subprocess.run(["setcap", "cap_net_raw+ep", str(ping)], check=False, capture_output=True)
    os.setxattr(ping, "user.note", b"kept")
    sparse = tree / "sparse"
    with open(sparse, "wb") as out:
        out.seek(10 << 20)
        out.write(b"end")
    (tree / "tmp").mkdir(mode=0o1777)
    os.chmod(tree / "tmp", 0o1777)
    os.utime(tree / "bin", ns=(1_000_000_000, 2_000_000_000))
    return tree


def _describe(root: Path) -> list[tuple[object, ...]]:
    rows = []
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files] if directory == str(root) else [*dirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            xattrs = sorted((n, os.getxattr(path, n, follow_symlinks=False))
                            for n in os.listxattr(path, follow_symlinks=False))
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            content = None
            if stat.S_ISREG(info.st_mode):
                content = Path(path).read_bytes()
            rows.append((os.path.relpath(path, root), info.st_mode, info.st_uid, info.st_gid,
                         info.st_size, info.st_mtime_ns, info.st_rdev, info.st_nlink, xattrs,
                         target, content))
    return sorted(rows, key=lambda row: str(row[0]))


def test_the_copy_is_what_cp_a_makes(tmp_path: Path) -> None:
    tree = _tree(tmp_path)
    copy_tree(str(tree), str(tmp_path / "ours"))
    subprocess.run(["cp", "-a", str(tree), str(tmp_path / "cps")], check=True)
    assert _describe(tmp_path / "ours") == _describe(tmp_path / "cps")
    # holes stay holes
    assert os.stat(tmp_path / "ours" / "sparse").st_blocks * 512 < 1 << 20


def test_a_write_in_the_copy_does_not_reach_the_layer(tmp_path: Path) -> None:
    driver = VfsDriver(tmp_path / "vfs")
    driver.create("parent", None)
    layer = Path(driver.get("parent"))
    (layer / "file").write_text("image")
    os.link(layer / "file", layer / "link")
    driver.create("child", "parent")
    child = Path(driver.get("child"))
    (child / "link").write_text("container")
    assert (layer / "file").read_text() == "image"
    assert (child / "file").read_text() == "container"  # the two names are still one file
    assert os.stat(child / "file").st_ino != os.stat(layer / "file").st_ino
    assert driver.layers() == ["child", "parent"]
