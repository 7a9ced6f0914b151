"""Reading ``/etc/passwd`` and ``/etc/group`` out of a layer's tree without leaving it.

The tree is an image's, so untrusted: each component is opened relative to the one before with
``O_NOFOLLOW``, and a symlink anywhere on the way makes the file count as absent rather than
lead out of the root (to the host's own ``/etc/passwd``, say).

An overlay layer is read unmounted, as overlayfs would show it: its own diff, then the diffs
below it, nearest first, up to a whiteout or an opaque directory on the way. Nothing is mounted,
so nothing is left mounted when the reader is killed.
"""

from __future__ import annotations

import errno
import os
import stat

#: larger than any real passwd or group file
ACCOUNTS_LIMIT = 4 << 20
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


OPAQUE = "trusted.overlay.opaque"


class _Hidden(Exception):
    """The path is whited out (or behind an opaque directory) in a layer: absent below too."""


def read_accounts(root: str, lowers: tuple[str, ...] = ()) -> dict[str, str]:
    """``{"passwd": text, "group": text}`` of the tree at ``root`` (empty text where absent),
    or with ``lowers`` of the overlay of ``root`` (an upper diff) on them."""
    return {name: _read_layered((root, *lowers), ("etc", name)) for name in ("passwd", "group")}


def _read_layered(layers: tuple[str, ...], parts: tuple[str, ...]) -> str:
    overlay = len(layers) > 1
    for layer in layers:
        try:
            data = _read_confined(layer, parts, overlay)
        except _Hidden:
            return ""
        if data is not None:
            return data.decode("utf-8", errors="replace")
    return ""


def _read_confined(root: str, parts: tuple[str, ...], overlay: bool) -> bytes | None:
    """The file's bytes; None when this layer does not have it and, with ``overlay``, a lower
    may (raises :class:`_Hidden` when this layer hides it from them)."""
    try:
        fd = os.open(root, _DIRECTORY)
    except OSError:
        return None
    lowers_show = overlay
    try:
        for part in parts[:-1]:
            _check_not_whiteout(fd, part, lowers_show)
            next_fd = os.open(part, _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
            # what an opaque directory lacks, the lowers cannot show
            lowers_show = lowers_show and not _is_opaque(fd)
        _check_not_whiteout(fd, parts[-1], lowers_show)
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            return os.read(file_fd, ACCOUNTS_LIMIT)
        finally:
            os.close(file_fd)
    except OSError as error:
        if error.errno == errno.ENOENT and lowers_show:
            return None
        # a symlink on the way (never followed out of the root), or hidden from the lowers
        raise _Hidden from error
    finally:
        os.close(fd)


def _check_not_whiteout(fd: int, name: str, lowers_show: bool) -> None:
    if not lowers_show:
        return
    try:
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
        raise _Hidden


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, OPAQUE) == b"y"
    except OSError:
        return False
