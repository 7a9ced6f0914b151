"""Applying one image layer onto the merged tree of the layers below it.

The vfs and devicemapper model: a layer's root starts as a copy (or a snapshot) of its parent's,
and the layer's tar stream is applied on top, as moby's ``UnpackLayer`` does:

- ``.wh.NAME`` deletes NAME (a file, a symlink, a whole directory) of the lower layers; and
  ``.wh..wh..opq`` in a directory deletes everything the lower layers put in it. Neither touches
  what this same layer unpacks, whatever the order of the entries in the tar (OCI image spec:
  whiteouts apply to lower layers only). No ``.wh.`` entry is ever written. Other
  ``.wh..wh.`` names are AUFS metadata and are skipped, as Docker does.
- An entry replaces what is at its path, except a directory over a directory, which keeps the
  lower contents and takes the entry's owner, mode and times.
- Kept: numeric owners, modes with the set-id and sticky bits, hard links (to entries of this
  layer or of the tree below), symlinks (their targets as stored: absolute or dangling, they are
  resolved inside the container, never here), device nodes and FIFOs, modification times (those
  of directories set last, once nothing more is written in them), and extended attributes from
  PAX ``SCHILY.xattr.*`` records. An attribute the filesystem refuses (EOPNOTSUPP, EPERM:
  ``security.selinux`` where no LSM takes it, ``user.*`` on a symlink) is a warning counted in
  the result, not a failure.

Nothing is written outside the root. Every write goes through a directory descriptor reached from
the root one component at a time, with ``O_NOFOLLOW``; the last component of an entry is never
followed (a symlink there is replaced). Entry names and hard-link targets are cleaned first: a
leading ``/`` is dropped (as Docker does), ``..`` that climbs above the root is refused. A
symlink met on the way to an entry's directory is followed when it is relative and stays inside
the root at every step (``lib -> usr/lib``, which some layers write through); an absolute one, or
one that climbs out, is refused (:class:`~drivers.image.errors.UnsafeLayer`): where it points
depends on where the tree is mounted, so a layer that writes through it is not trusted. Docker
resolves such paths in a chroot instead; refusing is the stricter choice. Refusals are raised
before the entry is written; what earlier entries wrote stays, and the caller discards the layer.

With ``whiteouts="overlay"`` the root is instead a new, empty overlayfs upper directory (the
layer's own diff) and ``lowers`` the diff directories of the layers below, nearest first; they are
only read. Whiteouts then become overlayfs's own, as containerd's and moby's overlay appliers
write them: ``.wh.NAME`` a 0:0 character device NAME, ``.wh..wh..opq`` the attribute
``trusted.overlay.opaque=y`` on its directory (a directory of this layer that a whiteout names is
made opaque too). The merged tree is what the lowers show through the upper, as the kernel shows
it: a path component missing from the upper is looked up in the lowers (stopping at a whiteout, a
non-directory or an opaque directory), a lower directory is made in the upper with its owner, mode
and attributes (overlayfs's copy-up) so that an entry can go below it, a lower symlink on the way
is followed under the same rules as above, and a hard link to a lower file copies the file up
first. ``trusted.overlay.*`` attributes in the tar are dropped (with a warning): they would steer
the kernel's view of the layers.

The tar stream is parsed by :mod:`tarfile` in streaming mode (one pass, no seeking); the writes
are ours (``tarfile``'s extraction follows other rules). The blob digest and the diff ID are
taken in the same pass (:mod:`drivers.image.stream`).
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import IO, Literal, cast

from drivers.image.errors import CorruptLayer, DigestMismatch, LayerError, UnsafeLayer
from drivers.image.stream import CHUNK, LayerStream, Readable

WHITEOUT = ".wh."
WHITEOUT_META = ".wh..wh."
OPAQUE = ".wh..wh..opq"
XATTR_PAX = "SCHILY.xattr."
#: symlinks followed on the way to one entry before it is refused, as the kernel's ELOOP
MAX_SYMLINKS = 40
#: directory descriptors kept open between entries (tar streams list a directory's entries
#: together, so a handful is enough)
OPEN_DIRECTORIES = 32
#: what ``setxattr`` answers for an attribute this filesystem or kernel will not take
XATTR_REFUSED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM})
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: overlayfs's marks in an upper directory (Documentation/filesystems/overlayfs.rst)
OVERLAY_OPAQUE = "trusted.overlay.opaque"
OVERLAY_XATTRS = "trusted.overlay."

Whiteouts = Literal["delete", "overlay"]

Path = tuple[str, ...]


@dataclass(frozen=True)
class AppliedLayer:
    """What :func:`apply_layer` did.

    ``blob_digest`` is the digest of the bytes read (what a manifest names), ``diff_id`` that of
    the uncompressed tar stream (what the image config's ``rootfs.diff_ids`` names); both
    ``"sha256:<hex>"`` unless another algorithm was asked for. ``compression`` is ``"gzip"``,
    ``"zstd"`` or ``"none"``. ``bytes_written`` counts the regular files' contents,
    ``entries`` the tar entries (whiteouts included), ``tar_size`` the uncompressed stream.
    ``xattr_warnings`` has one line per extended attribute the filesystem refused.
    """

    blob_digest: str
    diff_id: str
    compression: str
    tar_size: int
    bytes_written: int
    entries: int
    xattr_warnings: tuple[str, ...]


def apply_layer(
    root: str | os.PathLike[str],
    blob: Readable | str | os.PathLike[str],
    *,
    blob_digest: str | None = None,
    diff_id: str | None = None,
    whiteouts: Whiteouts = "delete",
    lowers: tuple[str, ...] = (),
) -> AppliedLayer:
    """Apply the layer ``blob`` (a path, or a binary stream read once to its end) onto the
    directory ``root``, which holds the merged tree of the layers below it (``whiteouts=
    "delete"``), or is an empty overlayfs upper directory over ``lowers`` (``"overlay"``).

    When ``blob_digest`` or ``diff_id`` is given (``"sha256:<hex>"``), the digest taken on the way
    must match it, else :class:`~drivers.image.errors.DigestMismatch`; it can only be known at
    the end, so the tree is already written then, and is the caller's to discard, as it is after
    any other error:

    - :class:`~drivers.image.errors.UnsafeLayer`: an entry would write outside ``root``;
    - :class:`~drivers.image.errors.CorruptLayer`: truncated or corrupt data, not a tar stream,
      an entry that cannot be applied (an unknown type, a hard link to nothing);
    - :class:`~drivers.image.errors.LayerError`: the host refused a write (its ``errno`` set),
      or the layer is zstd and nothing here decompresses zstd.

    Must run as root (owners, device nodes).

    >>> apply_layer("/var/lib/berth/vfs/dir/3f1c...", "blobs/sha256/9a4b...",
    ...             diff_id="sha256:5d0d...")  # doctest: +SKIP
    AppliedLayer(blob_digest='sha256:9a4b...', diff_id='sha256:5d0d...', compression='gzip', ...)
    """
    algorithm = _algorithm(blob_digest, diff_id)
    if isinstance(blob, (str, os.PathLike)):
        try:
            source = open(blob, "rb")  # noqa: SIM115 - an error here is not the layer's
        except OSError as error:
            raise LayerError(f"cannot open the layer blob {os.fspath(blob)}: {error.strerror}",
                             errno=error.errno) from error
        with source:
            return apply_layer(root, source, blob_digest=blob_digest, diff_id=diff_id,
                               whiteouts=whiteouts, lowers=lowers)
    if whiteouts not in ("delete", "overlay"):
        raise LayerError(f"whiteouts={whiteouts!r}: 'delete' or 'overlay'")
    if lowers and whiteouts != "overlay":
        raise LayerError("lower directories are only read with whiteouts='overlay'")
    with LayerStream(blob, algorithm) as stream, \
            _Tree(os.fspath(root), overlay=whiteouts == "overlay", lowers=lowers) as tree:
        entries = tree.unpack(stream.tar)
        try:
            tree.set_directory_times()
        except OSError as error:
            raise LayerError(f"cannot set the times of the layer's directories: "
                             f"{error.strerror}", errno=error.errno) from error
        got_blob, got_diff = stream.finish()
        for name, expected, got in (("blob digest", blob_digest, got_blob),
                                    ("diff ID", diff_id, got_diff)):
            if expected is not None and expected.lower() != got:
                raise DigestMismatch(f"the layer's {name} is {got}, not {expected}",
                                     expected=expected, actual=got)
        return AppliedLayer(blob_digest=got_blob, diff_id=got_diff,
                            compression=stream.compression, tar_size=stream.tar_size,
                            bytes_written=tree.written, entries=entries,
                            xattr_warnings=tuple(tree.warnings))


def _algorithm(*digests: str | None) -> str:
    named = {d.partition(":")[0].lower() for d in digests if d is not None}
    if len(named) > 1:
        raise LayerError(f"the blob digest and the diff ID use different algorithms: "
                         f"{', '.join(sorted(named))}")
    return named.pop() if named else "sha256"


def _clean(name: str) -> Path:
    """An entry's path under the root, as components (``()`` is the root itself): a leading
    ``/`` dropped, ``.`` and ``..`` folded. :class:`UnsafeLayer` when ``..`` climbs above the
    root."""
    if "\0" in name:
        raise CorruptLayer(f"{name!r}: a NUL byte in a path", entry=name)
    relative = posixpath.normpath(name.lstrip("/") or ".")
    if relative == ".." or relative.startswith("../"):
        raise UnsafeLayer(f"{name!r} is outside the layer's root", entry=name)
    return () if relative == "." else tuple(relative.split("/"))


class _StrictTarInfo(tarfile.TarInfo):
    """A header block that does not parse is an error wherever it is. ``tarfile`` otherwise
    takes a bad block after the first entry, or a stream cut at a block boundary, for the end of
    the archive, and a truncated layer would pass for a shorter one."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _StrictTarInfo:
        if len(buf) != tarfile.BLOCKSIZE:
            raise CorruptLayer("the tar stream ends before its end-of-archive marker: the layer "
                               "is truncated (or empty)")
        if buf.count(0) == tarfile.BLOCKSIZE:  # the end-of-archive marker: tarfile's to handle
            return super().frombuf(buf, encoding, errors)
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as error:
            raise CorruptLayer(f"a tar header does not check out: {error}") from error


class _Tree:
    """The root being written, reached through descriptors only."""

    def __init__(self, root: str, *, overlay: bool = False, lowers: tuple[str, ...] = ()) -> None:
        self.overlay = overlay
        self.lowers: list[int] = []
        try:
            self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            for lower in lowers:
                self.lowers.append(os.open(lower, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as error:
            for fd in self.lowers:
                os.close(fd)
            if hasattr(self, "fd"):
                os.close(self.fd)
            raise LayerError(f"cannot open the layer's root or a lower one: {error.strerror} "
                             f"({error.filename})", errno=error.errno) from error
        # overlay: what this layer hides of the lowers (paths as found, symlinks resolved)
        self.opaque: set[Path] = set()
        self.whited: set[Path] = set()
        self.written = 0
        self.warnings: list[str] = []
        # paths (as found, symlinks resolved) that this layer unpacked, and every directory
        # above them: what whiteouts and opaque markers must leave alone
        self.unpacked: set[Path] = set()
        self.above_unpacked: set[Path] = set()
        self.directory_times: dict[Path, tuple[int, int]] = {}
        self._open: OrderedDict[Path, tuple[int, Path]] = OrderedDict()
        self._stale: list[int] = []

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self._forget()
        self._close_stale()
        for fd in self.lowers:
            os.close(fd)
        os.close(self.fd)

    # -- walking ------------------------------------------------------------------------

    def _forget(self) -> None:
        """Something was removed: descriptors kept for lookups may name deleted directories.
        They are closed before the next entry, not now: the current one may still use them."""
        self._stale.extend(fd for fd, _ in self._open.values())
        self._open.clear()

    def _close_stale(self) -> None:
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()

    def directory(self, parts: Path, entry: str, *, create: bool,
                  copy_up: bool | None = None) -> tuple[int, Path] | None:
        """A descriptor of the directory at ``parts`` (owned by this object: not to be closed)
        and its path with symlinks resolved; missing directories are made when ``create``, else
        ``None`` is returned for them. Over lowers, a directory only they have is copied up
        when ``copy_up`` (default: ``create``)."""
        found = self._open.get(parts)
        if found is not None:
            self._open.move_to_end(parts)
            return found
        walked = self._walk(parts, entry, create=create,
                            copy_up=create if copy_up is None else copy_up)
        if walked is None:
            return None
        self._open[parts] = walked
        if len(self._open) > OPEN_DIRECTORIES:
            self._stale.append(self._open.popitem(last=False)[1][0])
        return walked

    def _walk(self, parts: Path, entry: str, *, create: bool,
              copy_up: bool) -> tuple[int, Path] | None:
        opened: list[int] = []
        real: list[str] = []
        pending = list(reversed(parts))
        followed = 0
        try:
            while pending:
                name = pending.pop()
                if name in ("", "."):
                    continue
                if name == "..":  # only from a symlink's target: entry names are cleaned
                    if not real:
                        raise UnsafeLayer(f"{entry!r}: a symlink on its path leads out of "
                                          "the layer's root", entry=entry)
                    real.pop()
                    os.close(opened.pop())
                    continue
                here = opened[-1] if opened else self.fd
                lower: tuple[int, os.stat_result] | None = None
                try:
                    info = os.stat(name, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    lower = self._below((*real, name))
                    if lower is None or (stat.S_ISDIR(lower[1].st_mode) and not copy_up):
                        if not create:
                            return None
                        os.mkdir(name, 0o700, dir_fd=here)
                        fd = os.open(name, _DIRECTORY, dir_fd=here)
                        opened.append(fd)
                        real.append(name)
                        os.fchmod(fd, 0o755)
                        continue
                    info = lower[1]
                if self.overlay and lower is None and _is_whiteout(info):
                    if not create:
                        return None
                    # a whiteout of this layer, then entries below the same name: a new
                    # directory that shows nothing of the lowers
                    os.unlink(name, dir_fd=here)
                    os.mkdir(name, 0o755, dir_fd=here)
                    real_name = (*real, name)
                    self.whited.discard(real_name)
                    self._make_opaque(here, name, real_name)
                    info = os.stat(name, dir_fd=here, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    followed += 1
                    where = "/".join([*real, name])
                    if followed > MAX_SYMLINKS:
                        raise UnsafeLayer(f"{entry!r}: too many symlinks on its path (at "
                                          f"{where})", entry=entry, errno=errno.ELOOP)
                    target = (os.readlink(name, dir_fd=here) if lower is None
                              else self._read_lower_link(lower[0], (*real, name)))
                    if target.startswith("/"):
                        raise UnsafeLayer(f"{entry!r}: {where} is a symlink to the absolute "
                                          f"path {target!r}; writing through it is refused",
                                          entry=entry)
                    pending.extend(reversed(target.split("/")))
                    continue
                if not stat.S_ISDIR(info.st_mode):
                    raise CorruptLayer(f"{entry!r}: {'/'.join([*real, name])} is not a "
                                       "directory", entry=entry, errno=errno.ENOTDIR)
                if lower is not None:
                    self._copy_up_directory(here, name, lower[0], (*real, name), info)
                opened.append(os.open(name, _DIRECTORY, dir_fd=here))
                real.append(name)
            fd = opened.pop() if opened else os.dup(self.fd)
            return fd, tuple(real)
        finally:
            for fd in opened:
                os.close(fd)

    # -- the lowers (overlay) -------------------------------------------------------------

    def _below(self, real: Path) -> tuple[int, os.stat_result] | None:
        """What the lowers show at ``real`` (a path without symlinks), as overlayfs looks it
        up: the nearest lower that has it (its index) and its status, or None when none has
        it or a whiteout, a non-directory or an opaque directory on the way hides it. What this
        layer whited out or made opaque hides the lowers too."""
        if not self.lowers or not real:
            return None
        if any(real[:i] in self.opaque for i in range(1, len(real))) or real in self.whited:
            return None
        for index, lower in enumerate(self.lowers):
            found, last_layer = self._lookup(lower, real)
            if found is not None:
                return (index, found) if not _is_whiteout(found) else None
            if last_layer:
                return None
        return None

    def _lookup(self, lower: int, real: Path) -> tuple[os.stat_result | None, bool]:
        """``real`` in one lower: its status (None when missing) and whether this lower hides
        the ones below it on the way (an opaque directory, a whiteout or a non-directory)."""
        opened: list[int] = []
        try:
            here = lower
            for position, name in enumerate(real):
                try:
                    info = os.stat(name, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    return None, False
                if position == len(real) - 1:
                    return info, False
                if not stat.S_ISDIR(info.st_mode):
                    return None, True
                here = os.open(name, _DIRECTORY, dir_fd=here)
                opened.append(here)
                if _opaque_directory(here):
                    # the rest of the path is looked up in this lower only
                    found, _ = self._lookup(here, real[position + 1:])
                    return found, True
            return None, False
        finally:
            for fd in opened:
                os.close(fd)

    def _lower_parent(self, index: int, real: Path) -> int:
        """A new descriptor of the directory holding ``real`` in lower ``index``."""
        fd = os.dup(self.lowers[index])
        try:
            for name in real[:-1]:
                next_fd = os.open(name, _DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read_lower_link(self, index: int, real: Path) -> str:
        parent = self._lower_parent(index, real)
        try:
            return os.readlink(real[-1], dir_fd=parent)
        finally:
            os.close(parent)

    def _copy_up_directory(self, parent: int, name: str, index: int, real: Path,
                           info: os.stat_result) -> None:
        """Make in the upper the lower directory at ``real``, as overlayfs's copy-up does
        (owner, mode, attributes; its times change with what is written into it anyway)."""
        os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
        try:
            lower_parent = self._lower_parent(index, real)
            try:
                source = os.open(name, _DIRECTORY, dir_fd=lower_parent)
            finally:
                os.close(lower_parent)
            try:
                os.fchown(fd, info.st_uid, info.st_gid)
                os.fchmod(fd, stat.S_IMODE(info.st_mode))
                _copy_xattrs(source, fd)
            finally:
                os.close(source)
        finally:
            os.close(fd)

    def _copy_up_file(self, parent: int, name: str, index: int, real: Path,
                      info: os.stat_result) -> None:
        """Copy the lower non-directory at ``real`` into the upper directory ``parent``, with
        its owner, mode, attributes and times (a hard link to it is about to be made)."""
        lower_parent = self._lower_parent(index, real)
        try:
            if stat.S_ISREG(info.st_mode):
                source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 dir_fd=lower_parent)
                try:
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=parent)
                    try:
                        while chunk := os.read(source, CHUNK):
                            _write_all(fd, chunk)
                        os.fchown(fd, info.st_uid, info.st_gid)
                        os.fchmod(fd, stat.S_IMODE(info.st_mode))
                        _copy_xattrs(source, fd)
                        os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
                    finally:
                        os.close(fd)
                finally:
                    os.close(source)
                return
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(name, dir_fd=lower_parent), name, dir_fd=parent)
            else:
                os.mknod(name, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev, dir_fd=parent)
            os.chown(name, info.st_uid, info.st_gid, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISLNK(info.st_mode):
                os.chmod(name, stat.S_IMODE(info.st_mode), dir_fd=parent)
            os.utime(name, ns=(info.st_atime_ns, info.st_mtime_ns), dir_fd=parent,
                     follow_symlinks=False)
        finally:
            os.close(lower_parent)

    def _make_opaque(self, parent: int, name: str, real: Path) -> None:
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
        try:
            os.setxattr(fd, OVERLAY_OPAQUE, b"y")
        finally:
            os.close(fd)
        self.opaque.add(real)

    # -- unpacking ----------------------------------------------------------------------

    def unpack(self, tar_stream: Readable) -> int:
        """Apply every entry of the tar stream; return how many there were."""
        count = 0
        try:
            with tarfile.open(fileobj=cast(IO[bytes], tar_stream), mode="r|",
                              tarinfo=_StrictTarInfo) as archive:
                while (member := archive.next()) is not None:
                    # streaming: nothing looks back, so the headers seen need not pile up
                    archive.members.clear()  # type: ignore[attr-defined]
                    count += 1
                    self._close_stale()
                    try:
                        self._entry(archive, member)
                    except OSError as error:
                        raise LayerError(f"{member.name!r}: {error.strerror or error}",
                                         entry=member.name, errno=error.errno) from error
                    except tarfile.TarError as error:  # reading the entry's data
                        raise CorruptLayer(f"{member.name!r}: {error}: the layer is truncated "
                                           "or corrupt", entry=member.name) from error
        except tarfile.TarError as error:
            raise CorruptLayer(f"not a valid tar stream: {error}") from error
        return count

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _clean(member.name)
        base = parts[-1] if parts else ""
        if any(part.startswith(WHITEOUT) for part in parts[:-1]):
            if parts[0].startswith(WHITEOUT_META):
                return  # AUFS metadata (.wh..wh.plnk/...)
            raise CorruptLayer(f"{member.name!r}: a whiteout cannot hold entries",
                               entry=member.name)
        if base == OPAQUE:
            self._opaque(parts[:-1], member.name)
        elif base.startswith(WHITEOUT_META):
            return  # AUFS metadata (.wh..wh.aufs, ...)
        elif base.startswith(WHITEOUT):
            self._whiteout(parts[:-1], base[len(WHITEOUT):], member.name)
        elif not parts:
            if not member.isdir():
                raise CorruptLayer(f"{member.name!r}: the root can only be a directory",
                                   entry=member.name)
            self._attributes(self.fd, member, ())
        else:
            self._write(archive, member, parts)

    def _write(self, archive: tarfile.TarFile, member: tarfile.TarInfo, parts: Path) -> None:
        name = member.name
        link: tuple[int, str] | None = None
        if member.islnk():  # the target first: refused before anything is replaced
            link = self._link_target(member)
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()
                or member.ischr() or member.isblk() or member.isfifo()):
            raise CorruptLayer(f"{name!r}: unsupported tar entry type {member.type!r}",
                               entry=name)
        found = self.directory(parts[:-1], name, create=True)
        assert found is not None
        parent, real_parent = found
        last = parts[-1]
        real = (*real_parent, last)
        replaced_whiteout = self._make_room(parent, last, keep_directory=member.isdir())
        if replaced_whiteout:
            self.whited.discard(real)
        if member.isreg():
            self._file(archive, member, parent, last)
        elif member.isdir():
            self._directory(member, parent, last, real)
            if replaced_whiteout:  # whited out earlier in this layer: shows nothing below
                self._make_opaque(parent, last, real)
        elif link is not None:
            os.link(link[1], last, src_dir_fd=link[0], dst_dir_fd=parent, follow_symlinks=False)
        else:
            if member.issym():
                os.symlink(member.linkname, last, dir_fd=parent)
            elif member.isfifo():
                os.mkfifo(last, 0o600, dir_fd=parent)
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(last, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                         dir_fd=parent)
            self._attributes(parent, member, real, name=last)
        self.unpacked.add(real)
        self.above_unpacked.update(real[:i] for i in range(len(real)))

    def _make_room(self, parent: int, name: str, *, keep_directory: bool) -> bool:
        """Remove what is at ``name``, unless a directory stays a directory; True when what
        was removed is an overlay whiteout of this layer."""
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(info.st_mode) and keep_directory:
            return False
        self._remove(parent, name, info)
        return self.overlay and _is_whiteout(info)

    def _remove(self, parent: int, name: str, info: os.stat_result) -> None:
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
        self._forget()

    def _file(self, archive: tarfile.TarFile, member: tarfile.TarInfo, parent: int,
              name: str) -> None:
        data = archive.extractfile(member)
        assert data is not None
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent)
        try:
            hole = False
            while chunk := data.read(CHUNK):
                if chunk[0] == 0 and chunk[-1] == 0 and chunk.count(0) == len(chunk):
                    os.lseek(fd, len(chunk), os.SEEK_CUR)  # a hole, as GNU tar --sparse
                    hole = True
                else:
                    _write_all(fd, chunk)
                    hole = False
            if hole:
                os.ftruncate(fd, member.size)
            self.written += member.size
            self._attributes(fd, member, ())
        finally:
            os.close(fd)

    def _directory(self, member: tarfile.TarInfo, parent: int, name: str, real: Path) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass  # a directory of a lower layer: merged
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
        try:
            self._attributes(fd, member, real)
        finally:
            os.close(fd)

    def _link_target(self, member: tarfile.TarInfo) -> tuple[int, str]:
        """The directory (a descriptor, kept open until the next entry) and the name of a hard
        link's target, which must exist and not be a directory."""
        target = _clean(member.linkname)
        found = (self.directory(target[:-1], member.name, create=False, copy_up=True)
                 if target else None)
        try:
            if found is None:
                raise FileNotFoundError
            try:
                info = os.stat(target[-1], dir_fd=found[0], follow_symlinks=False)
                if self.overlay and _is_whiteout(info):
                    raise FileNotFoundError
            except FileNotFoundError:
                lower = self._below((*found[1], target[-1]))
                if lower is None:
                    raise
                info = lower[1]
                if not stat.S_ISDIR(info.st_mode):
                    self._copy_up_file(found[0], target[-1], lower[0],
                                       (*found[1], target[-1]), info)
        except FileNotFoundError as error:
            raise CorruptLayer(f"{member.name!r}: the hard link's target {member.linkname!r} "
                               "does not exist", entry=member.name) from error
        if stat.S_ISDIR(info.st_mode):
            raise CorruptLayer(f"{member.name!r}: a hard link to the directory "
                               f"{member.linkname!r}", entry=member.name)
        return found[0], target[-1]

    def _attributes(self, fd: int, member: tarfile.TarInfo, real: Path,
                    name: str | None = None) -> None:
        """Owner, then mode (a chown clears set-id bits and file capabilities), then extended
        attributes, then times; on ``fd`` itself, or on ``name`` in the directory ``fd`` without
        following it. A directory's times wait for the end."""
        symlink = member.issym()
        if name is None:
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
        else:
            os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
            if not symlink:  # a node just made here, not a symlink: nothing to follow
                os.chmod(name, member.mode & 0o7777, dir_fd=fd)
        path: int | str = fd if name is None else f"/proc/self/fd/{fd}/{name}"
        for key, value in member.pax_headers.items():
            if not key.startswith(XATTR_PAX):
                continue
            attribute = key[len(XATTR_PAX):]
            if self.overlay and attribute.startswith(OVERLAY_XATTRS):
                self.warnings.append(f"{member.name}: extended attribute {attribute} not "
                                     "kept: it is overlayfs's own")
                continue
            try:
                if name is None:
                    os.setxattr(path, attribute, value.encode("utf-8", "surrogateescape"))
                else:
                    os.setxattr(path, attribute, value.encode("utf-8", "surrogateescape"),
                                follow_symlinks=False)
            except OSError as error:
                if error.errno not in XATTR_REFUSED:
                    raise
                self.warnings.append(f"{member.name}: extended attribute {attribute} not "
                                     f"kept: {error.strerror}")
        times = _times(member)
        if member.isdir():
            self.directory_times[real] = times
        elif name is None:
            os.utime(fd, ns=times)
        else:
            os.utime(name, ns=times, dir_fd=fd, follow_symlinks=False)

    # -- whiteouts ----------------------------------------------------------------------

    def _whiteout(self, parent_parts: Path, target: str, entry: str) -> None:
        if target in ("", ".", ".."):
            raise CorruptLayer(f"{entry!r}: a whiteout of {target!r}", entry=entry)
        found = self.directory(parent_parts, entry, create=False, copy_up=True)
        if found is None:
            return  # nothing below to hide
        parent, real_parent = found
        if self.overlay:
            self._overlay_whiteout(parent, target, (*real_parent, target))
        else:
            self._hide(parent, target, (*real_parent, target))

    def _overlay_whiteout(self, parent: int, name: str, real: Path) -> None:
        """What this layer unpacked stays, and a directory of it stops showing the lowers'
        contents; anything else in the upper is a copy-up of the lowers' (or a whiteout) and
        goes, and a whiteout hides the lowers' entry."""
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if info is not None:
            if real in self.unpacked or real in self.above_unpacked:
                if stat.S_ISDIR(info.st_mode):
                    self._hide_lowers_in(parent, name, real)
                return
            self._remove(parent, name, info)
            self.whited.discard(real)
            self.opaque = {path for path in self.opaque if path[:len(real)] != real}
        if self._below(real) is None:
            return  # nothing below to hide
        os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)
        self.whited.add(real)

    def _opaque(self, parts: Path, entry: str) -> None:
        if self.overlay:
            self._overlay_opaque(parts, entry)
            return
        if not parts:
            self._hide_children(self.fd, ())
            return
        found = self.directory(parts[:-1], entry, create=False)
        if found is None:
            return
        parent, real_parent = found
        try:
            fd = os.open(parts[-1], _DIRECTORY, dir_fd=parent)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return  # no directory of a lower layer there
            raise
        try:
            self._hide_children(fd, (*real_parent, parts[-1]))
        finally:
            os.close(fd)

    def _overlay_opaque(self, parts: Path, entry: str) -> None:
        if not parts:
            # overlayfs ignores an opaque upper root: each name there is whited out instead
            names = {name for fd in (self.fd, *self.lowers) for name in _names(fd)}
            for name in sorted(names):
                self._overlay_whiteout(self.fd, name, (name,))
            return
        found = self.directory(parts, entry, create=False, copy_up=True)
        if found is None:
            return  # no directory there, in this layer or below
        fd, real = found
        if real not in self.opaque:
            os.setxattr(fd, OVERLAY_OPAQUE, b"y")
            self.opaque.add(real)
        self._drop_copies(fd, real)

    def _hide_lowers_in(self, parent: int, name: str, real: Path) -> None:
        """The directory of this layer at ``real`` shows nothing of the lowers any more."""
        if real not in self.opaque:
            self._make_opaque(parent, name, real)
        fd = os.open(name, _DIRECTORY, dir_fd=parent)
        try:
            self._drop_copies(fd, real)
        finally:
            os.close(fd)

    def _drop_copies(self, fd: int, real: Path) -> None:
        """Remove from the upper directory ``fd`` what this layer did not unpack: copies of
        the lowers' entries (and whiteouts), which an opaque directory must not show."""
        for name in _names(fd):
            path = (*real, name)
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if path not in self.unpacked and path not in self.above_unpacked:
                self._remove(fd, name, info)
                self.whited.discard(path)
            elif stat.S_ISDIR(info.st_mode):
                child = os.open(name, _DIRECTORY, dir_fd=fd)
                try:
                    self._drop_copies(child, path)
                finally:
                    os.close(child)

    def _hide(self, parent: int, name: str, real: Path) -> None:
        """Remove what the lower layers put at ``real``, keeping what this layer unpacked."""
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if real not in self.unpacked and real not in self.above_unpacked:
            self._remove(parent, name, info)
        elif stat.S_ISDIR(info.st_mode):
            fd = os.open(name, _DIRECTORY, dir_fd=parent)
            try:
                self._hide_children(fd, real)
            finally:
                os.close(fd)

    def _hide_children(self, fd: int, real: Path) -> None:
        for name in _names(fd):
            self._hide(fd, name, (*real, name))

    # -- last -----------------------------------------------------------------------------

    def set_directory_times(self) -> None:
        """Directories' times, once nothing more is written in them; one that a later entry
        removed or replaced is skipped."""
        self._close_stale()
        for real, times in self.directory_times.items():
            if not real:
                os.utime(self.fd, ns=times)
                continue
            try:
                found = self.directory(real[:-1], "/".join(real), create=False)
                if found is None:
                    continue
                fd = os.open(real[-1], _DIRECTORY, dir_fd=found[0])
            except (UnsafeLayer, CorruptLayer):
                continue
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    continue
                raise
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


def _is_whiteout(info: os.stat_result) -> bool:
    """overlayfs's whiteout: a character device 0:0."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _opaque_directory(fd: int) -> bool:
    try:
        return os.getxattr(fd, OVERLAY_OPAQUE) == b"y"
    except OSError as error:
        if error.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return False
        raise


def _copy_xattrs(source: int, target: int) -> None:
    for name in os.listxattr(source):
        if name.startswith(OVERLAY_XATTRS):
            continue
        try:
            os.setxattr(target, name, os.getxattr(source, name))
        except OSError as error:
            if error.errno not in XATTR_REFUSED:
                raise


def _names(fd: int) -> list[str]:
    with os.scandir(fd) as entries:
        return [entry.name for entry in entries]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in nanoseconds, at the precision of the PAX record when there is one."""
    mtime = _nanoseconds(member.pax_headers.get("mtime"))
    if mtime is None:
        mtime = int(member.mtime) * 10**9
    atime = _nanoseconds(member.pax_headers.get("atime"))
    return (atime if atime is not None and atime >= mtime else mtime), mtime


def _nanoseconds(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(Decimal(value) * 10**9)
    except InvalidOperation:
        return None

