"""berth: containers as finite-state machines persisted in SQL.

>>> from fsm import Orchestrator
>>> orc = Orchestrator()
>>> orc.import_image("busybox", "busybox.tar")
>>> c = orc.create("busybox", ["sh", "-c", "echo hi; exit 7"], network_mode="none")
>>> orc.start(c.id)
>>> orc.wait(c.id)
7
"""

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
from fsm.orchestrator import Orchestrator

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
