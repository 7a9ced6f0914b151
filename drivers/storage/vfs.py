"""The vfs driver: every layer is a plain directory, a full copy of its parent.

Slow to create and heavy on disk, but it works on any filesystem and kernel, which makes it the
default where the kernel has no device-mapper thin target.

The copy is made here, with system calls, rather than by ``cp -a --reflink=auto`` through
:mod:`drivers.commands`: it makes the same copy (below), and ``create`` is on the path of every
``docker create``-like call, where the ``cp`` process and ``sh``'s threads around it cost 15 ms on
an idle host and several times that on a loaded one, against ~30 ms for the copy itself
(docs/performance.md, hot spot K). What remains is the filesystem's: on ext4 a symlink costs
~100 µs to create, and a busybox layer is 268 of them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from contextlib import AbstractContextManager
from pathlib import Path

from drivers.errors import HostError, NoSuchDevice
from drivers.storage import ApplyTarget, mounted_target

#: ioctl(2) that shares a file's extents with another (Btrfs, XFS): ``cp --reflink=auto``
FICLONE = 0x40049409
#: what FICLONE fails with where the filesystem cannot share extents (ext4, tmpfs, across devices)
NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF})


class VfsDriver:
    name = "vfs"

    def __init__(self, home: Path, why_not_overlay: str | None = None) -> None:
        self.home = home
        #: when chosen for want of overlay: the host's reason, for ``pool status``
        self.why_not_overlay = why_not_overlay
        self.dirs = home / "dir"
        self.dirs.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, id: str) -> Path:
        return self.dirs / id

    def create(self, id: str, parent: str | None) -> None:
        target = self._path(id)
        if target.exists():
            raise HostError(f"layer {id[:12]} already exists")
        # built under a temporary name and renamed, so that a crash never leaves a half-copied
        # layer under its real name
        partial = self.dirs / f"{id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        if parent is None:
            partial.mkdir(mode=0o755)
        else:
            source = self._path(parent)
            if not source.is_dir():
                raise NoSuchDevice(f"parent layer {parent[:12]} does not exist")
            try:
                copy_tree(str(source), str(partial))
            except OSError as error:
                raise HostError(f"cannot copy layer {parent[:12]}: {error}",
                                errno=error.errno) from error
        os.replace(partial, target)

    def remove(self, id: str) -> None:
        for path in (self._path(id), self.dirs / f"{id}.partial"):
            if path.exists():
                shutil.rmtree(path)

    def get(self, id: str, mount_label: str = "") -> str:
        path = self._path(id)
        if not path.is_dir():
            raise NoSuchDevice(f"layer {id[:12]} does not exist")
        return str(path)

    def put(self, id: str) -> None:
        """Nothing was mounted: a vfs layer is always available."""

    def exists(self, id: str) -> bool:
        return self._path(id).is_dir()

    def status(self) -> list[tuple[str, str]]:
        facts = [("Root Dir", str(self.dirs)), ("Layers", str(len(self.layers())))]
        if self.why_not_overlay:
            facts.append(("Not Overlay Because", self.why_not_overlay))
        return facts

    def cleanup(self) -> None:
        """Nothing is held on the host between calls."""

    def layers(self) -> list[str]:
        """Every layer with a directory, whole or ``.partial`` (still the driver's to remove)."""
        return sorted({p.name.removesuffix(".partial") for p in self.dirs.iterdir()})

    def apply_target(self, id: str) -> AbstractContextManager[ApplyTarget]:
        return mounted_target(self, id)


def copy_tree(source: str, target: str) -> None:
    """Copy the tree at ``source`` to ``target`` (which must not exist) as ``cp -a
    --reflink=auto`` does: directories, files (their holes kept; extents shared where the
    filesystem can, else copied in the kernel), symlinks, device nodes, FIFOs and sockets, with
    owner, mode (set-id bits included), extended attributes (file capabilities, ACLs) and
    timestamps. Hard links inside the tree stay hard links between the copies: nothing of the
    copy is linked to the source, so a write in one never shows in the other."""
    _copy(source, target, os.lstat(source), {}, [True])


def _copy(source: str, target: str, info: os.stat_result, linked: dict[tuple[int, int], str],
          reflink: list[bool]) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)
        with os.scandir(source) as entries:
            for entry in entries:
                _copy(entry.path, os.path.join(target, entry.name),
                      entry.stat(follow_symlinks=False), linked, reflink)
    else:
        if info.st_nlink > 1:
            first = linked.setdefault((info.st_dev, info.st_ino), target)
            if first != target:
                os.link(first, target)
                return
        if stat.S_ISREG(mode):
            _copy_file(source, target, info.st_size, reflink)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        else:
            os.mknod(target, stat.S_IFMT(mode) | 0o600, info.st_rdev)
    # owner first: chown clears set-id bits and file capabilities, which come next
    os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(mode):
        os.chmod(target, stat.S_IMODE(mode))
    for name in os.listxattr(source, follow_symlinks=False):
        os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False),
                    follow_symlinks=False)
    # last: filling a directory changes its times
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_file(source: str, target: str, size: int, reflink: list[bool]) -> None:
    """The data, hole by hole; ``reflink[0]`` turns False at the first filesystem that cannot
    share extents, so the ioctl is not tried again for every file of the tree."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if reflink[0]:
                try:
                    fcntl.ioctl(dst, FICLONE, src)
                    return
                except OSError as error:
                    if error.errno not in NO_REFLINK:
                        raise
                    reflink[0] = False
            offset = 0
            while offset < size:
                try:
                    start = os.lseek(src, offset, os.SEEK_DATA)
                except OSError as error:
                    if error.errno == errno.ENXIO:  # only a hole is left
                        break
                    raise
                end = os.lseek(src, start, os.SEEK_HOLE)
                while start < end:
                    copied = _copy_range(src, dst, end - start, start)
                    if copied == 0:  # the file shrank under us
                        end = start
                        break
                    start += copied
                offset = end
            os.ftruncate(dst, size)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_range(src: int, dst: int, count: int, offset: int) -> int:
    """copy_file_range(2), in the kernel; read and write where it is not supported."""
    try:
        return os.copy_file_range(src, dst, count, offset, offset)
    except OSError as error:
        if error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    data = os.pread(src, min(count, 1 << 20), offset)
    return os.pwrite(dst, data, offset)
