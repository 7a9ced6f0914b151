"""The compare-and-swap that commits every transition.

One database transaction per transition: the ``containers`` row moves only if it still is at the
version and state we read (``UPDATE ... WHERE id = :id AND version = :seen AND state = :source``),
and the ``transitions`` audit row and any ``events`` rows are written in the same transaction (on
PostgreSQL a single statement: :meth:`fsm.sql.SQL.commit_change`). The side effect has already
happened by then (it is the trigger's ``prepare``), so no transaction is ever open across one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from drivers.crashpoints import crash_point
from fsm import states
from fsm.errors import ConcurrentTransition
from models import utcnow

if TYPE_CHECKING:
    from transitions import EventData

    from fsm.container import LiveContainer


def commit_transition(event: EventData) -> None:
    """Machine-wide ``before_state_change``: raise :class:`ConcurrentTransition` (and so leave
    the state unmoved) when someone else moved the row first. The statements are
    :class:`fsm.sql.SQL`'s, on the driver's cursor."""
    container = cast("LiveContainer", event.model)
    transition = event.transition
    assert transition is not None and transition.dest is not None and event.event is not None
    source, dest, trigger = transition.source, transition.dest, event.event.name
    orc = container.orc
    sql = orc.sql
    owner = orc.owner
    now = utcnow()
    values = dict(container.changes)
    values["version"] = version = container.version + 1
    if dest in states.IN_FLIGHT:
        values["owner"] = owner
        values["lease_expires_at"] = now + timedelta(seconds=orc.lease_seconds)
    else:
        values["owner"] = None
        values["lease_expires_at"] = None
    if dest == states.REMOVED:
        change: tuple[str, Any] = (sql.delete_if_unmoved, (container.id, container.version, source))
    else:
        values["state"] = dest
        change = sql.compare_and_swap(values, container.id, container.version, source)
    audit = sql.audit_row(container.id, trigger, source, dest,
                          container.trigger_started_at or now, now,
                          values.get("error", "") if trigger == "fail" else "", owner)
    if not sql.commit_change(change, audit, now, container.id, container.events):
        raise ConcurrentTransition(container.id, trigger, source)
    crash_point(f"commit.{trigger}")
    container.owner = values["owner"]
    container.applied(version)


def renew_lease(container: LiveContainer) -> bool:
    """Push the lease of an in-flight row forward; False when we no longer own it."""
    sql = container.orc.sql
    until = utcnow() + timedelta(seconds=container.orc.lease_seconds)
    with sql.transaction() as cursor:
        cursor.execute(sql.renew_lease, (*sql.stored({"lease_expires_at": until}), container.id,
                                         container.version, container.orc.owner))
        return bool(cursor.rowcount == 1)
