"""The one exception family berth raises. Catch :class:`BerthError` to catch them all.

Every message says what happened, to what, and what to do about it::

    try:
        orc.start("web")
    except NoSuchContainer as err:
        print(err)          # no container matches 'web': give a name, an id or a unique id prefix
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from drivers.errors import HostError


class BerthError(Exception):
    """Root of every error berth raises on purpose."""

    #: what the CLI exits with: 1 for a berth error, 2 for bad usage
    exit_status = 1


class ConfigError(BerthError):
    """An argument or option is invalid. Raised before any side effect.

    ``field`` names the argument, ``value`` is what was given and ``allowed`` says what would do.
    """

    exit_status = 2

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={value!r} is not valid: {allowed}")


class NoSuchContainer(BerthError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"no container matches {ref!r}: give a name, a full id or a unique id prefix "
            "(`berth ps -a` lists them)"
        )


class AmbiguousReference(BerthError):
    def __init__(self, ref: str, matches: Sequence[str], kind: str = "containers") -> None:
        self.ref = ref
        self.matches = tuple(matches)
        shown = ", ".join(m[:12] for m in self.matches[:5])
        super().__init__(
            f"{ref!r} matches {len(self.matches)} {kind} ({shown}): give more of the id"
        )


class NoSuchImage(BerthError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"no image named {ref!r}: pull it (`berth pull REF`), load it (`berth image load -i "
            "FILE`) or import a root filesystem (`berth image import NAME FILE.tar`); "
            "`berth images` lists them"
        )


class NameInUse(BerthError):
    def __init__(self, kind: str, name: str, owner_id: str) -> None:
        self.name = name
        super().__init__(
            f"the {kind} name {name!r} is already in use by {owner_id[:12]}: "
            "remove that one or choose another name"
        )


class ImageInUse(BerthError):
    def __init__(self, name: str, container_ids: Sequence[str]) -> None:
        shown = ", ".join(c[:12] for c in container_ids[:5])
        super().__init__(f"image {name!r} is used by containers {shown}: remove them first")


class InvalidState(BerthError):
    """The container's state does not allow the operation."""

    def __init__(
        self, container_id: str, state: str, operation: str, hint: str = "", name: str = ""
    ) -> None:
        self.container_id = container_id
        self.state = state
        self.operation = operation
        who = f"{name} ({container_id[:12]})" if name else container_id[:12]
        message = f"cannot {operation} container {who}: it is {state}"
        super().__init__(f"{message}; {hint}" if hint else message)


class ConcurrentTransition(BerthError):
    """Someone else moved the container between our read and our write; nothing was changed."""

    def __init__(self, container_id: str, trigger: str, expected_state: str) -> None:
        self.container_id = container_id
        super().__init__(
            f"container {container_id[:12]} changed while {trigger!r} was being applied "
            f"(it is no longer {expected_state} at the version read): retry, or see `berth history`"
        )


class StartFailed(BerthError):
    """``start`` failed; the error edge has run: the container is ``dead`` and holds nothing."""

    def __init__(self, container_id: str, step: str, cause: str) -> None:
        self.container_id = container_id
        self.step = step
        self.cause = cause
        super().__init__(f"container {container_id[:12]} failed while {step}: {cause}")


class SchemaOutOfDate(BerthError):
    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"the database {url} is at schema revision {current or 'none'}, berth needs {head}: "
            "run `berth db upgrade`"
        )


class Timeout(BerthError):
    pass


class DriverError(BerthError, HostError):
    """A host operation failed. ``command``, ``stderr`` and ``errno`` say which and why."""

    @classmethod
    def from_host(cls, error: HostError) -> DriverError:
        return cls(error.message, command=error.command, stderr=error.stderr, errno=error.errno)


@contextmanager
def host_errors() -> Iterator[None]:
    """Re-raise a driver's :class:`~drivers.errors.HostError` as a :class:`DriverError`."""
    try:
        yield
    except HostError as error:
        raise DriverError.from_host(error) from error
