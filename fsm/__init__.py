"""berth: containers as finite-state machines persisted in SQL.

>>> from fsm import Orchestrator
>>> orc = Orchestrator()
>>> orc.import_image("busybox", "busybox.tar")
>>> c = orc.create("busybox", ["sh", "-c", "echo hi; exit 7"], network_mode="none")
>>> orc.start(c.id)
>>> orc.wait(c.id)
7
"""

from typing import TYPE_CHECKING, Any

from fsm.errors import (
    AmbiguousReference,
    BerthError,
    ConcurrentTransition,
    ConfigError,
    DriverError,
    ImageInUse,
    InvalidState,
    NameInUse,
    NoSuchContainer,
    NoSuchImage,
    SchemaOutOfDate,
    StartFailed,
    Timeout,
)
from fsm.info import ContainerInfo, Event, ImageInfo, TransitionRecord

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator


def __getattr__(name: str) -> Any:
    # the Orchestrator pulls in SQLAlchemy and the drivers: imported on first use, so that
    # `berth --help` and the exit hook's first lines stay fast
    if name == "Orchestrator":
        from fsm.orchestrator import Orchestrator

        return Orchestrator
    raise AttributeError(f"module 'fsm' has no attribute {name!r}")


__all__ = [
    "AmbiguousReference",
    "BerthError",
    "ConcurrentTransition",
    "ConfigError",
    "ContainerInfo",
    "DriverError",
    "Event",
    "ImageInUse",
    "ImageInfo",
    "InvalidState",
    "NameInUse",
    "NoSuchContainer",
    "NoSuchImage",
    "Orchestrator",
    "SchemaOutOfDate",
    "StartFailed",
    "Timeout",
    "TransitionRecord",
]
