"""The compare-and-swap that commits every transition: the machine's ``before_state_change``.

The trigger's side effect has already happened (it is its ``prepare``), so no transaction is ever
open across one. If someone else moved the row first, nothing is written and
:class:`ConcurrentTransition` leaves the state unmoved.
"""

from __future__ import annotations

from typing import Any

from transitions import EventData

from drivers.crashpoints import crash_point
from fsm import states
from fsm.errors import ConcurrentTransition
from fsm.steps.host import container_of, host_of
from models import utcnow


def commit_transition(event: EventData) -> None:
    container, host = container_of(event), host_of(event)
    transition = event.transition
    assert transition is not None and transition.dest is not None and event.event is not None
    source, dest, trigger = transition.source, transition.dest, event.event.name
    now = utcnow()
    values: dict[str, Any] = dict(container.changes)
    values["version"] = container.version + 1
    in_flight = dest in states.IN_FLIGHT
    values["owner"] = host.owner if in_flight else None
    values["lease_expires_at"] = now + host.lease if in_flight else None
    values["state"] = dest
    record = {
        "container_id": container.id, "trigger": trigger, "source": source, "dest": dest,
        "started_at": container.trigger_started_at or now, "finished_at": now,
        "error": values.get("error", "") if trigger == "fail" else "", "actor": host.owner,
    }
    changed = host.db.containers.commit_transition(
        container.id, container.version, source, None if dest == states.REMOVED else values,
        record, now, container.events)
    if not changed:
        raise ConcurrentTransition(container.id, trigger, source)
    crash_point(f"commit.{trigger}")
    container.applied(values)
