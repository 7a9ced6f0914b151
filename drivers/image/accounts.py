"""Reading ``/etc/passwd`` and ``/etc/group`` out of a layer's tree without leaving it.

The tree is an image's, so untrusted: each component is opened relative to the one before with
``O_NOFOLLOW``, and a symlink anywhere on the way makes the file count as absent rather than
lead out of the root (to the host's own ``/etc/passwd``, say).
"""

from __future__ import annotations

import os

#: larger than any real passwd or group file
ACCOUNTS_LIMIT = 4 << 20
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def read_accounts(root: str) -> dict[str, str]:
    """``{"passwd": text, "group": text}`` of the tree at ``root`` (empty text where absent)."""
    return {name: _read_confined(root, ("etc", name)) for name in ("passwd", "group")}


def _read_confined(root: str, parts: tuple[str, ...]) -> str:
    try:
        fd = os.open(root, _DIRECTORY)
    except OSError:
        return ""
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        try:
            data = os.read(file_fd, ACCOUNTS_LIMIT)
        finally:
            os.close(file_fd)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")
