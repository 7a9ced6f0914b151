"""A container being driven through one operation: the ``transitions`` model.

It is read from its row, carries what the step callbacks learn (``changes`` and ``events`` are
committed with the next transition), and is dropped when the operation ends. It is deliberately
not the ORM object: no database session lives across a side effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from drivers.network import Attachment
from drivers.runtime.bundle import BundleSpec
from drivers.runtime.oci import ContainerPaths
from fsm.info import ContainerInfo
from fsm.listing import LIVE_COLUMNS, decode_row

if TYPE_CHECKING:
    from fsm.orchestrator import Orchestrator


@dataclass(eq=False)
class LiveContainer:
    orc: Orchestrator
    id: str
    name: str
    image_id: str
    image_name: str
    state: str
    version: int
    node: str
    owner: str | None
    exit_code: int
    error: str
    pid: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    has_been_started_before: bool
    restart_count: int
    manually_stopped: bool
    config: dict[str, Any]
    host_config: dict[str, Any]
    #: column values to write with the next committed transition
    changes: dict[str, Any] = field(default_factory=dict)
    #: (action, attributes) events to append with the next committed transition
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: what an undo step could not do; reported in ``error`` by fail/exit
    undo_errors: list[str] = field(default_factory=list)
    #: when the current trigger fired
    trigger_started_at: datetime | None = None
    #: what the steps of ``start`` hand to the next: the mounted rootfs, the network, the bundle
    rootfs: str | None = None
    attachment: Attachment | None = None
    bundle: BundleSpec | None = None

    @cached_property
    def paths(self) -> ContainerPaths:
        """Where its files are (the steps of one operation ask several times)."""
        return self.orc.paths(self.id)

    @classmethod
    def from_stored(cls, orc: Orchestrator, row: Sequence[Any]) -> LiveContainer:
        """From the DBAPI's values of :data:`fsm.listing.LIVE_COLUMNS`."""
        return cls(orc=orc, **dict(zip(LIVE_COLUMNS, decode_row(row), strict=True)))

    def set(self, **columns: Any) -> None:
        """Stage column values for the next transition's commit."""
        self.changes.update(columns)

    def emit(self, action: str, **attributes: Any) -> None:
        """Stage an event for the next transition's commit."""
        self.events.append((action, {"image": self.image_name, "name": self.name, **attributes}))

    def applied(self, version: int) -> None:
        """The transition was committed: the staged values are now the row's."""
        for column, value in self.changes.items():
            setattr(self, column, value)
        self.version = version
        self.changes.clear()
        self.events.clear()

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id, name=self.name, image=self.image_name, state=self.state,
            exit_code=self.exit_code, error=self.error, pid=self.pid,
            created_at=self.created_at, started_at=self.started_at,
            finished_at=self.finished_at, has_been_started_before=self.has_been_started_before,
            restart_count=self.restart_count, manually_stopped=self.manually_stopped,
            config=self.config, host_config=self.host_config,
            owner=self.owner, node=self.node,
        )
