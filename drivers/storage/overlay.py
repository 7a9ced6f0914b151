"""The overlay driver: each layer a directory of its own changes, stacked by overlayfs.

A layer costs what it adds: nothing is copied from its parent. Layout under ``home``
(``<root>/overlay``), after moby's overlay2::

    l/<short> -> ../<id>/diff     a short name for each layer's diff, to keep mount options short
    <id>/diff/                    the layer's own files and overlayfs whiteouts (the upper dir)
    <id>/work/                    overlayfs's work directory, on the same filesystem as diff
    <id>/merged/                  where the layer is mounted while someone uses it
    <id>/link                     the layer's short name
    <id>/lower                    its parents' short names, nearest first (``l/A:l/B``); absent
                                  for a layer without parent, whose ``diff`` is its whole tree

The kernel takes a mount's options up to a page long. Each lower costs ``l/`` and
:data:`LINK_LENGTH` characters plus a ``:``: 15, against ~80 for the full path of a diff, so a
chain of ~250 layers still fits (overlayfs stacks 500 at most). Where the options fit with absolute
paths, the mount is one ``mount(2)`` call; a longer chain is mounted by ``mount(8)`` run inside
``home`` with relative paths (moby re-executes itself into ``home`` for the same reason: the
calling process's working directory is shared by its threads). Past a page even so, refused.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from drivers import mounts
from drivers.commands import QUICK, run
from drivers.crashpoints import crash_point
from drivers.errors import HostError, NoSuchDevice
from drivers.storage import ApplyTarget

LINK_DIR = "l"
#: characters of a short link name: random base32, 60 bits, checked against the existing ones
LINK_LENGTH = 12
#: overlayfs's limit on stacked lower layers (fs/overlayfs/params.h OVL_MAX_STACK)
MAX_LOWERS = 500
#: what the kernel copies of a mount's data: one page, its terminating NUL included
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_ID = re.compile(r"[0-9A-Za-z_-]{2,64}")
#: a layer made or deleted under this suffix is not whole (a crash may leave one)
PARTIAL = ".partial"
#: where :func:`overlay_unsupported` tries a real overlay mount (a dot: never a layer id)
PROBE = ".probe"


class OverlayDriver:
    """Layers as overlayfs upper directories stacked on their parents' chains.

    Example::

        driver = OverlayDriver(Path("/var/lib/berth/overlay"))
        driver.create(image_id, parent=None)
        driver.create(container_id, parent=image_id)
        rootfs = driver.get(container_id)  # <home>/<id>/merged, an overlay mount
        driver.put(container_id)
    """

    name = "overlay"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.links = home / LINK_DIR
        self.links.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.path.lexists(home / PROBE):
            with _probe_lock(home):
                _remove_probe(home)
        # users of each mount in this process; a mount found already there counts as one user
        # (moby's RefCounter): a container mounted by one berth process is released by another
        self._users: dict[str, int] = {}

    # -- layers -------------------------------------------------------------------------

    def _path(self, id: str) -> Path:
        return self.home / id

    def create(self, id: str, parent: str | None) -> None:
        _check_id(id)
        target = self._path(id)
        if target.exists():
            raise HostError(f"layer {id[:12]} already exists", errno=errno.EEXIST)
        lowers: list[str] = []
        parent_diff: Path | None = None
        if parent is not None:
            _check_id(parent)
            parent_home = self._path(parent)
            if not (parent_home / "diff").is_dir():
                raise NoSuchDevice(f"parent layer {parent[:12]} does not exist")
            lowers = [f"{LINK_DIR}/{_read(parent_home / 'link')}", *self._lowers_of(parent)]
            self._check_mount_size(id, lowers)
            parent_diff = parent_home / "diff"
        # built under a temporary name and renamed, so that a crash never leaves a half-made
        # layer under its real name; ``remove`` finds the partial one and its link
        partial = self.home / f"{id}{PARTIAL}"
        self._remove_tree(partial, id)
        partial.mkdir(mode=0o700)
        diff = partial / "diff"
        diff.mkdir(mode=0o755)
        if parent_diff is not None:
            # the merged root's owner and mode are the upper root's: keep the parent's
            info = parent_diff.stat()
            os.chown(diff, info.st_uid, info.st_gid)
            os.chmod(diff, stat.S_IMODE(info.st_mode))
        (partial / "work").mkdir(mode=0o700)
        (partial / "merged").mkdir(mode=0o700)
        link = self._new_link()
        (partial / "link").write_text(link, encoding="ascii")
        if lowers:
            (partial / "lower").write_text(":".join(lowers), encoding="ascii")
        os.symlink(f"../{id}/diff", self.links / link)
        crash_point("overlay.before_rename")
        os.replace(partial, target)

    def remove(self, id: str) -> None:
        """Unmount and delete the layer, and a partial one a crash left; a missing layer is
        already removed."""
        _check_id(id)
        self._users.pop(id, None)
        partial = self.home / f"{id}{PARTIAL}"
        self._remove_tree(partial, id)
        target = self._path(id)
        if not target.exists():
            return
        mounts.unmount(str(target / "merged"))
        crash_point("overlay.after_unmount")
        # renamed first, so that a crash during the deletion never leaves a layer that looks
        # whole under its name
        os.replace(target, partial)
        crash_point("overlay.after_rename")
        self._remove_tree(partial, id)

    def _remove_tree(self, directory: Path, id: str) -> None:
        if not directory.exists():
            return
        mounts.unmount(str(directory / "merged"))
        with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
            link = self.links / _read(directory / "link")
            if os.readlink(link) == f"../{id}/diff":
                link.unlink()
        crash_point("overlay.after_unlink")
        shutil.rmtree(directory)

    def exists(self, id: str) -> bool:
        return _ID.fullmatch(id) is not None and (self._path(id) / "diff").is_dir()

    def layers(self) -> list[str]:
        """Every layer with a directory here, whole or ``.partial`` (half made or half
        removed: still the driver's to remove)."""
        found = set()
        for entry in os.scandir(self.home):
            id = entry.name.removesuffix(PARTIAL)
            if (id != LINK_DIR and _ID.fullmatch(id) is not None
                    and entry.is_dir(follow_symlinks=False)):
                found.add(id)
        return sorted(found)

    # -- mounts -------------------------------------------------------------------------

    def get(self, id: str, mount_label: str = "") -> str:
        """The layer's tree: its ``diff`` for a layer without parent, else the overlay of its
        ``diff`` on its parents' chain, mounted at ``merged`` by the first user."""
        _check_id(id)
        home = self._path(id)
        if not (home / "diff").is_dir():
            raise NoSuchDevice(f"layer {id[:12]} does not exist")
        lowers = self._lowers_of(id)
        if not lowers:
            return str(home / "diff")
        merged = str(home / "merged")
        # the mount table is the truth: another process may have unmounted what this one
        # counted (a stop run elsewhere), or mounted what it did not (a start run elsewhere)
        if mounts.is_mounted(merged):
            users = self._users.get(id, 0) or 1
        else:
            self._mount(id, lowers, mount_label)
            crash_point("overlay.after_mount")
            users = 0
        self._users[id] = users + 1
        return merged

    def put(self, id: str) -> None:
        """Release one ``get``; the last one unmounts. A ``put`` without a ``get`` does
        nothing, except on a mount left by another process, which it releases."""
        _check_id(id)
        merged = str(self._path(id) / "merged")
        if not mounts.is_mounted(merged):
            self._users.pop(id, None)
            return
        users = self._users.get(id, 0) or 1
        if users > 1:
            self._users[id] = users - 1
            return
        mounts.unmount(merged)
        self._users.pop(id, None)

    def _mount(self, id: str, lowers: list[str], mount_label: str) -> None:
        label = f",context={mount_label!r}" if mount_label else ""
        home = str(self.home)
        absolute = _mount_data([f"{home}/{lower}" for lower in lowers],
                               f"{home}/{id}/diff", f"{home}/{id}/work") + label
        merged = f"{home}/{id}/merged"
        if len(absolute) < PAGE_SIZE:
            mounts.mount_data("overlay", merged, "overlay", absolute)
            return
        relative = _mount_data(lowers, f"{id}/diff", f"{id}/work") + label
        if len(relative) >= PAGE_SIZE:
            raise _too_long(id, lowers, relative)
        run(["env", "-C", home, "mount", "-t", "overlay", "-o", relative, "overlay", merged],
            timeout=QUICK, what=f"cannot mount layer {id[:12]}")

    def _check_mount_size(self, id: str, lowers: list[str]) -> None:
        relative = _mount_data(lowers, f"{id}/diff", f"{id}/work")
        if len(relative) >= PAGE_SIZE or len(lowers) > MAX_LOWERS:
            raise _too_long(id, lowers, relative)

    def _lowers_of(self, id: str) -> list[str]:
        try:
            text = _read(self._path(id) / "lower")
        except FileNotFoundError:
            return []
        return text.split(":") if text else []

    def _new_link(self) -> str:
        while True:
            link = base64.b32encode(secrets.token_bytes(10)).decode()[:LINK_LENGTH]
            if not os.path.lexists(self.links / link):
                return link

    # -- applying and the rest ----------------------------------------------------------

    def apply_target(self, id: str) -> AbstractContextManager[ApplyTarget]:
        return self._apply_target(id)

    @contextmanager
    def _apply_target(self, id: str) -> Iterator[ApplyTarget]:
        """The layer's own ``diff``, over its parents' (nothing to mount)."""
        _check_id(id)
        diff = self._path(id) / "diff"
        if not diff.is_dir():
            raise NoSuchDevice(f"layer {id[:12]} does not exist")
        lowers = tuple(os.path.realpath(self.home / lower) for lower in self._lowers_of(id))
        yield ApplyTarget(str(diff), whiteouts="overlay", lowers=lowers)

    def status(self) -> list[tuple[str, str]]:
        return [("Root Dir", str(self.home)),
                ("Backing Filesystem", backing_filesystem(self.home)),
                ("Supports d_type", "true" if supports_d_type(self.home) else "false"),
                ("Layers", str(len(self.layers()))),
                ("Mounted Layers", str(len(mounts.mounted_under(str(self.home)))))]

    def cleanup(self) -> None:
        """Mounts stay (running containers use them); short links whose layer is gone (a crash
        between a create's link and its rename, or a remove's rmtree) are dropped."""
        for entry in os.scandir(self.links):
            with contextlib.suppress(OSError):
                target = os.readlink(entry.path)  # ../<id>/diff
                id = target.split("/")[1]
                if not self._path(id).exists() and not (self.home / f"{id}{PARTIAL}").exists():
                    os.unlink(entry.path)


def _check_id(id: str) -> None:
    """Refuse an id that cannot name a layer's directory (``l``, a path, a ``.partial``)."""
    if not isinstance(id, str) or _ID.fullmatch(id) is None:
        raise HostError(f"invalid layer id {id!r}: 2-64 letters, digits, '_' or '-'",
                        errno=errno.EINVAL)


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _mount_data(lowers: list[str], upper: str, work: str) -> str:
    return f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}"


def _too_long(id: str, lowers: list[str], data: str) -> HostError:
    return HostError(f"layer {id[:12]} would stack {len(lowers)} layers: overlayfs takes at most "
                     f"{MAX_LOWERS}, in mount options of at most {PAGE_SIZE - 1} characters "
                     f"(these would be {len(data)}); flatten the image (fewer layers)",
                     errno=errno.E2BIG)


# -- what the host offers -------------------------------------------------------------------


def overlay_unsupported(directory: Path) -> str | None:
    """Why overlay cannot hold layers under ``directory`` (made if missing), as a sentence;
    None when it can: the kernel has overlayfs, the filesystem reports file types in its
    directory entries (d_type) and takes ``trusted.*`` attributes, and an overlay with a whiteout
    and an opaque directory actually mounts there and shows what it should.

    The trial is made in ``directory/.probe``, one process at a time; what a process killed
    during it left (a mount included) goes first."""
    if not _kernel_has_overlay():
        return "the kernel has no overlayfs (not in /proc/filesystems; modprobe overlay)"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _probe_lock(directory):
        _remove_probe(directory)
        try:
            return _try_overlay(directory, directory / PROBE)
        finally:
            _remove_probe(directory)


def _try_overlay(directory: Path, probe: Path) -> str | None:
    fstype = backing_filesystem(directory)
    for part in ("lower/gone", "lower/opaque/old", "upper/opaque", "work", "merged"):
        (probe / part).mkdir(parents=True)
    if not supports_d_type(probe):
        return (f"the filesystem of {directory} ({fstype}) does not report file types in "
                "directory entries (d_type; XFS needs ftype=1)")
    try:
        os.setxattr(probe / "upper" / "opaque", "trusted.overlay.opaque", b"y")
    except OSError as error:
        return (f"the filesystem of {directory} ({fstype}) does not take trusted.* extended "
                f"attributes: {error.strerror}")
    try:
        os.mknod(probe / "upper" / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except OSError as error:
        return (f"the filesystem of {directory} ({fstype}) does not take overlay whiteouts "
                f"(0:0 character devices): {error.strerror}")
    try:
        mounts.mount_data("overlay", str(probe / "merged"), "overlay",
                          _mount_data([str(probe / "lower")], str(probe / "upper"),
                                      str(probe / "work")))
    except HostError as error:
        return f"overlayfs does not mount on {directory} ({fstype}): {error.stderr}"
    crash_point("overlay.probe_mounted")
    if os.path.lexists(probe / "merged" / "gone") or os.listdir(probe / "merged" / "opaque"):
        return (f"overlayfs on {directory} ({fstype}) does not honour whiteouts or opaque "
                "directories")
    return None


@contextmanager
def _probe_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the directory itself: the kernel drops it when its holder dies,
    so a probe left by a dead process is never taken for a live one's."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_probe(directory: Path) -> None:
    probe = directory / PROBE
    if os.path.lexists(probe):
        mounts.unmount(str(probe / "merged"))
        shutil.rmtree(probe)


def _kernel_has_overlay() -> bool:
    try:
        with open("/proc/filesystems", encoding="ascii") as filesystems:
            if any(line.split()[-1:] == ["overlay"] for line in filesystems):
                return True
    except OSError:
        return False
    with contextlib.suppress(HostError):
        run(["modprobe", "overlay"], timeout=QUICK)
    with open("/proc/filesystems", encoding="ascii") as filesystems:
        return any(line.split()[-1:] == ["overlay"] for line in filesystems)


def backing_filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (the deepest mount above it)."""
    real = os.path.realpath(path)
    best, fstype = "", "unknown"
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fields = left.split(" ")
            point = mounts.unescape(fields[4]) if len(fields) > 4 else ""
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, right.split(" ")[0]
    return fstype


class _Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


#: readdir(3)'s d_type for "the filesystem does not say"
DT_UNKNOWN = 0


def supports_d_type(directory: Path) -> bool:
    """Whether readdir on ``directory``'s filesystem reports entry types (overlayfs needs it to
    tell whiteouts from files without a stat per entry); tried on a file made there."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.opendir.argtypes = [ctypes.c_char_p]
    libc.readdir.restype = ctypes.POINTER(_Dirent)
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    probe = directory / f"d_type-{secrets.token_hex(4)}.probe"
    probe.mkdir()
    try:
        (probe / "file").touch()
        handle = libc.opendir(str(probe).encode())
        if not handle:
            raise OSError(ctypes.get_errno(), f"cannot read {probe}")
        try:
            while entry := libc.readdir(handle):
                if entry.contents.d_name == b"file":
                    return bool(entry.contents.d_type != DT_UNKNOWN)
        finally:
            libc.closedir(handle)
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)
