"""The compare-and-swap that commits every transition.

One database transaction per transition: the ``containers`` row moves only if it still is at the
version and state we read (``UPDATE ... WHERE id = :id AND version = :seen AND state = :source``),
and the ``transitions`` audit row and any ``events`` rows are written in the same transaction. The
side effect has already happened by then (it is the trigger's ``prepare``), so no transaction is
ever open across one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import bindparam, delete, insert, update

from drivers.crashpoints import crash_point
from fsm import states
from fsm.errors import ConcurrentTransition
from models import Container, ContainerEvent, TransitionAudit, utcnow

if TYPE_CHECKING:
    from transitions import EventData

    from fsm.container import LiveContainer

_containers = Container.__table__.c

# Built once: the statements are executed with parameters, so SQLAlchemy neither rebuilds nor
# recompiles them per transition (the UPDATE's SET clause follows the parameters' keys, and its
# compiled form is cached per set of keys).
_MATCHES = (
    (_containers.id == bindparam("cas_id"))
    & (_containers.version == bindparam("cas_version"))
    & (_containers.state == bindparam("cas_state"))
)
_COMPARE_AND_SWAP = update(Container).where(_MATCHES)
_DELETE_IF_UNMOVED = delete(Container).where(_MATCHES)
_AUDIT = insert(TransitionAudit)
_EVENT = insert(ContainerEvent)
_RENEW = update(Container).where(
    (_containers.id == bindparam("cas_id"))
    & (_containers.version == bindparam("cas_version"))
    & (_containers.owner == bindparam("cas_owner"))
)


def commit_transition(event: EventData) -> None:
    """Machine-wide ``before_state_change``: raise :class:`ConcurrentTransition` (and so leave
    the state unmoved) when someone else moved the row first."""
    container = cast("LiveContainer", event.model)
    assert event.transition is not None and event.event is not None
    source, dest, trigger = event.transition.source, event.transition.dest, event.event.name
    now = utcnow()
    values: dict[str, Any] = dict(container.changes)
    values["version"] = container.version + 1
    if dest in states.IN_FLIGHT:
        values["owner"] = container.orc.owner
        values["lease_expires_at"] = now + timedelta(seconds=container.orc.lease_seconds)
    else:
        values["owner"] = None
        values["lease_expires_at"] = None
    matches = {"cas_id": container.id, "cas_version": container.version, "cas_state": source}
    with container.orc.engine.begin() as connection:
        if dest == states.REMOVED:
            result = connection.execute(_DELETE_IF_UNMOVED, matches)
        else:
            values["state"] = dest
            result = connection.execute(_COMPARE_AND_SWAP, {**values, **matches})
        if result.rowcount != 1:
            raise ConcurrentTransition(container.id, trigger, source)
        connection.execute(_AUDIT, {
            "container_id": container.id, "trigger": trigger, "source": source, "dest": dest,
            "started_at": container.trigger_started_at or now, "finished_at": now,
            "error": values.get("error", "") if trigger == "fail" else "",
            "actor": container.orc.owner,
        })
        if container.events:
            connection.execute(
                _EVENT,
                [{"time": now, "container_id": container.id, "action": action,
                  "attributes": attributes} for action, attributes in container.events],
            )
    crash_point(f"commit.{trigger}")
    container.owner = values["owner"]
    container.applied(values["version"])


def renew_lease(container: LiveContainer) -> bool:
    """Push the lease of an in-flight row forward; False when we no longer own it."""
    until = utcnow() + timedelta(seconds=container.orc.lease_seconds)
    with container.orc.engine.begin() as connection:
        result = connection.execute(_RENEW, {
            "cas_id": container.id, "cas_version": container.version,
            "cas_owner": container.orc.owner, "lease_expires_at": until,
        })
    return result.rowcount == 1
