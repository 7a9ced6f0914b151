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

if TYPE_CHECKING:
    from fsm.info import ContainerInfo, Event, ImageInfo, TransitionRecord
    from fsm.orchestrator import Orchestrator

#: imported on first use: the Orchestrator pulls in SQLAlchemy and the drivers, and the records
#: of fsm.info the dataclasses module (and inspect), a fifth of ``berth ps``'s start-up; the
#: errors are cheap, and every path imports them anyway
_LAZY = {"Orchestrator": "fsm.orchestrator", "ContainerInfo": "fsm.info", "Event": "fsm.info",
         "ImageInfo": "fsm.info", "TransitionRecord": "fsm.info"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'fsm' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_LAZY[name]), name)


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
