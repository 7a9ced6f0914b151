"""A container being driven through one operation: the ``transitions`` model.

It is read from its row (every column of :class:`models.Container` but the lease), carries
what the steps learn (``changes`` and ``events`` are committed with the next transition), and is
dropped when the operation ends. It is deliberately not the ORM object: no database session
lives across a side effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.network import Attachment
from drivers.runtime.bundle import BundleSpec
from fsm.info import ContainerInfo


@dataclass(eq=False)
class LiveContainer:
    id: str
    name: str
    image_id: str
    #: the image as the container was created from it (a name, else its id)
    image: str
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
    #: which start this is: 1 for the first, one more for each; an exit counts only for its run
    run: int
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
    #: the phase of the step under way, for the error edge's message
    phase: str = ""

    def set(self, **columns: Any) -> None:
        """Stage column values for the next transition's commit."""
        self.changes.update(columns)

    def emit(self, action: str, **attributes: Any) -> None:
        """Stage an event for the next transition's commit."""
        self.events.append((action, {"image": self.image, "name": self.name, **attributes}))

    def applied(self, values: dict[str, Any]) -> None:
        """The transition was committed: ``values`` (the staged ones among them) are the row's."""
        for column, value in values.items():
            if column != "lease_expires_at":
                setattr(self, column, value)
        self.changes.clear()
        self.events.clear()

    def info(self) -> ContainerInfo:
        return ContainerInfo(
            id=self.id, name=self.name, image=self.image, state=self.state,
            exit_code=self.exit_code, error=self.error, pid=self.pid,
            created_at=self.created_at, started_at=self.started_at,
            finished_at=self.finished_at, has_been_started_before=self.has_been_started_before,
            restart_count=self.restart_count, manually_stopped=self.manually_stopped,
            config=self.config, host_config=self.host_config,
            owner=self.owner, node=self.node, run=self.run, image_id=self.image_id,
        )
