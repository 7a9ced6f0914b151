"""Errors raised by drivers.

``fsm.errors`` re-raises these as members of the ``BerthError`` family; drivers stay free of
``fsm`` so they can be used and tested alone.
"""

from __future__ import annotations

import errno as errnos
from collections.abc import Sequence


class HostError(Exception):
    """A host operation failed.

    ``command`` is the argv that failed (empty when the failure was not a command), ``stderr`` what
    it printed, and ``errno`` the meaning callers branch on (``errno.EBUSY``, ``errno.ENOENT``...)
    when it is known.
    """

    default_errno: int | None = None

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] = (),
        stderr: str = "",
        errno: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.command = tuple(command)
        self.stderr = stderr
        self.errno = errno if errno is not None else self.default_errno

    def __str__(self) -> str:
        text = self.message
        if self.command:
            text += f" (command: {' '.join(self.command)})"
        detail = self.stderr.strip()
        if detail:
            text += f": {detail.splitlines()[-1]}"
        return text


class DeviceBusy(HostError):
    default_errno = errnos.EBUSY


class DeviceExists(HostError):
    default_errno = errnos.EEXIST


class NoSuchDevice(HostError):
    default_errno = errnos.ENOENT


class CommandTimeout(HostError):
    default_errno = errnos.ETIMEDOUT


class NotEnoughSpace(HostError):
    """Less space is free somewhere a driver writes than it is configured to keep free.

    ``place`` names where (a pool's data space, the filesystem under its loop files), ``free``
    and ``wanted`` are bytes, ``min_free_space`` the percentage that asked for ``wanted``.
    """

    default_errno = errnos.ENOSPC

    def __init__(
        self, message: str, *, place: str, free: int, wanted: int, min_free_space: int
    ) -> None:
        super().__init__(message)
        self.place = place
        self.free = free
        self.wanted = wanted
        self.min_free_space = min_free_space


class InvalidDriverConfig(HostError):
    """A driver option is out of range; raised before anything on the host is touched."""

    default_errno = errnos.EINVAL
