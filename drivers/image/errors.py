"""Errors raised while applying an image layer.

All are :class:`~drivers.errors.HostError`, so ``fsm.errors`` turns them into ``DriverError`` like
any other driver failure. ``entry`` names the tar entry at fault (empty when the fault is in the
stream as a whole). A caller that gets one of these throws the half-applied layer away: nothing is
rolled back here.
"""

from __future__ import annotations

import errno as errnos

from drivers.errors import HostError


class LayerError(HostError):
    """A layer could not be applied: the host refused a write, or a tool is missing."""

    def __init__(self, message: str, *, entry: str = "", errno: int | None = None) -> None:
        super().__init__(message, errno=errno)
        self.entry = entry


class UnsafeLayer(LayerError):
    """An entry would write outside the layer's root (``..`` climbing out, a hard link to a path
    outside, a write through an absolute or escaping symlink); refused before it is written."""

    default_errno = errnos.EPERM


class CorruptLayer(LayerError):
    """The blob is not a layer: truncated or corrupt compressed data, not a tar stream, a tar
    header that does not check out, or an entry that cannot exist in a layer."""

    default_errno = errnos.EINVAL


class DigestMismatch(LayerError):
    """The blob's digest or the layer's diff ID is not the one the image announced."""

    default_errno = errnos.EINVAL

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class BadImage(HostError):
    """An image source that does not hold a usable image: a layout, archive, manifest or config
    that is missing, malformed, for another platform, or that a registry would not give."""

    default_errno = errnos.EINVAL
