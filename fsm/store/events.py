"""The event log (``docker events``) and the transition history, as operators query them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fsm.info import Event, TransitionRecord
from fsm.store.containers import audit, events
from fsm.store.engine import Connections
from models import utcnow


class EventStore:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def record(self, container_id: str, action: str, **attributes: Any) -> None:
        """An event that no transition carries (a SIGKILL sent by ``stop``, a stale exit)."""
        with self.connections.write() as connection:
            connection.execute(events.insert(), {"time": utcnow(), "container_id": container_id,
                                                 "action": action, "attributes": attributes})

    def select(self, since: datetime | None, until: datetime | None, container_id: str | None,
               actions: Sequence[str] | None) -> list[Event]:
        """Oldest first."""
        query = select(events).order_by(events.c.time, events.c.id)
        if since is not None:
            query = query.where(events.c.time >= since)
        if until is not None:
            query = query.where(events.c.time <= until)
        if container_id is not None:
            query = query.where(events.c.container_id == container_id)
        if actions is not None:
            query = query.where(events.c.action.in_(list(actions)))
        rows = self.connections.all(query)
        return [Event(r.id, r.time, r.container_id, r.action, dict(r.attributes), r.type)
                for r in rows]

    def history(self, container_id: str) -> list[TransitionRecord]:
        """Every committed transition of the container, oldest first."""
        query = select(audit).where(audit.c.container_id == container_id).order_by(audit.c.id)
        rows = self.connections.all(query)
        return [TransitionRecord(r.container_id, r.trigger, r.source, r.dest, r.started_at,
                                 r.finished_at, r.error) for r in rows]

    def container_ids(self) -> set[str]:
        """Every container this database has seen, removed ones included (their events
        stay)."""
        return set(self.connections.scalars(select(events.c.container_id).distinct()))
