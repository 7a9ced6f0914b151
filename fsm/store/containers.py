"""Container rows: load, insert, the compare-and-swap with its audit and event rows, leases, and
the listing. Statements are built once, with bound parameters, so SQLAlchemy's compiled cache
serves every later use; the model's column types do every conversion.

A transition commits in one transaction: the ``containers`` row moves only if it is still at the
version and state that was read (``UPDATE ... WHERE id = :id AND version = :seen AND state =
:source``), and its ``transitions`` audit row and ``events`` rows are written with it or not at
all. Nothing here runs while a side effect is under way: the callers commit after it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Delete,
    Row,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)

from fsm.container import LiveContainer
from fsm.info import ContainerInfo
from fsm.store.engine import Connections
from fsm.store.one_statement import AUDIT_PREFIX, EVENT_PREFIX, transition_statement
from models import Container, ContainerEvent, TransitionAudit

containers = cast(Table, Container.__table__)
audit = cast(Table, TransitionAudit.__table__)
events = cast(Table, ContainerEvent.__table__)

#: what a :class:`LiveContainer` is read from: every column of the model but the lease (only
#: recovery reads it)
LIVE_COLUMNS = tuple(c for c in containers.c if c.name != "lease_expires_at")
_LIVE: Select[Any] = select(*LIVE_COLUMNS)
_BY_ID_OR_NAME = _LIVE.where(or_(containers.c.id == bindparam("ref"),
                                 containers.c.name == bindparam("ref"))).limit(1)
_IN_STATES_ON_NODE = (select(*LIVE_COLUMNS, containers.c.lease_expires_at)
                      .where(containers.c.node == bindparam("node"),
                             containers.c.state.in_(bindparam("states", expanding=True))))
#: newest first: the indexes of migration 0005 give this order by a backward walk, no sort
_NEWEST_FIRST = (containers.c.created_at.desc(), containers.c.id.desc())
_LIST_ALL = _LIVE.order_by(*_NEWEST_FIRST)
_LIST_STATES = _LIVE.where(containers.c.state.in_(bindparam("states", expanding=True))
                           ).order_by(*_NEWEST_FIRST)
_ID_BY_REF = select(containers.c.id).where(or_(containers.c.id == bindparam("ref"),
                                               containers.c.name == bindparam("ref"))).limit(1)
_IDS_BY_PREFIX = (select(containers.c.id)
                  # the prefix is hex digits (checked by the caller): nothing to escape
                  .where(containers.c.id.startswith(bindparam("prefix")))
                  .limit(10))
_ID_BY_NAME = select(containers.c.id).where(containers.c.name == bindparam("name"))
_STATE = select(containers.c.state, containers.c.run).where(containers.c.id == bindparam("id"))
_USERS_OF_IMAGE = select(containers.c.id).where(containers.c.image_id == bindparam("image_id"))
_ON_NODE = select(containers.c.id, containers.c.state).where(
    containers.c.node == bindparam("node"))
_INSERT = insert(containers)
_INSERT_AUDIT = insert(audit)
_INSERT_EVENT = insert(events)
_SAME_ROW = and_(containers.c.id == bindparam("w_id"),
                 containers.c.version == bindparam("w_version"),
                 containers.c.state == bindparam("w_state"))
_DELETE_IF_UNMOVED: Delete = delete(containers).where(_SAME_ROW)
_RENEW_LEASE = (update(containers)
                .where(containers.c.id == bindparam("w_id"),
                       containers.c.version == bindparam("w_version"),
                       containers.c.owner == bindparam("w_owner"))
                .values(lease_expires_at=bindparam("until")))


class ContainerStore:
    """The ``containers`` table and what is committed with it."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        #: one compare-and-swap statement per set of columns it writes
        self._swaps: dict[tuple[str, ...], Update] = {}
        #: PostgreSQL commits a transition in one statement (:mod:`fsm.store.one_statement`)
        self._one_statement = connections.engine.dialect.name == "postgresql"
        self._one_statements: dict[tuple[tuple[str, ...] | None, bool], Select[Any]] = {}

    # -- reads ------------------------------------------------------------------------------

    def load(self, ref: str) -> LiveContainer | None:
        """The row whose id or name is ``ref``."""
        row = self.connections.first(_BY_ID_OR_NAME, {"ref": ref})
        return None if row is None else live(row)

    def id_of(self, ref: str) -> str | None:
        """The id of the row whose id or name is ``ref``."""
        found: str | None = self.connections.scalar(_ID_BY_REF, {"ref": ref})
        return found

    def ids_with_prefix(self, prefix: str) -> builtins.list[str]:
        """Up to ten ids that start with ``prefix``."""
        return self.connections.scalars(_IDS_BY_PREFIX, {"prefix": prefix})

    def id_of_name(self, name: str) -> str | None:
        found: str | None = self.connections.scalar(_ID_BY_NAME, {"name": name})
        return found

    def state_of(self, container_id: str) -> tuple[str, int] | None:
        """The row's state and run, or None once it is gone."""
        row = self.connections.first(_STATE, {"id": container_id})
        return None if row is None else (row.state, row.run)

    def in_states(self, node: str, states: Sequence[str]
                  ) -> builtins.list[tuple[LiveContainer, datetime | None]]:
        """This node's rows in ``states``, each with its lease's end."""
        rows = self.connections.all(_IN_STATES_ON_NODE, {"node": node, "states": list(states)})
        return [(live(row), row.lease_expires_at) for row in rows]

    def list(self, states: Sequence[str] | None) -> builtins.list[ContainerInfo]:
        """Containers in ``states`` (``None``: every one), newest first."""
        rows = self.connections.all(listing(states))
        return [info(row) for row in rows]

    def users_of_image(self, image_id: str) -> builtins.list[str]:
        return self.connections.scalars(_USERS_OF_IMAGE, {"image_id": image_id})

    def states_on_node(self, node: str) -> dict[str, str]:
        """Every container of ``node``: id → state."""
        return {row.id: row.state for row in self.connections.all(_ON_NODE, {"node": node})}

    # -- writes -----------------------------------------------------------------------------

    def insert(self, row: Mapping[str, Any], time: datetime,
               new_events: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """A new row and its ``create`` event; raises SQLAlchemy's ``IntegrityError`` when its
        name is taken."""
        with self.connections.write() as connection:
            connection.execute(_INSERT, dict(row))
            _insert_events(connection, time, row["id"], new_events)

    def commit_transition(self, container_id: str, seen_version: int, source: str,
                          values: Mapping[str, Any] | None, record: Mapping[str, Any],
                          time: datetime,
                          new_events: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Move the row from (``seen_version``, ``source``) by writing ``values`` (``None``:
        delete it), with the audit ``record`` and ``new_events``, all or nothing. False, and
        nothing written, when the row is no longer at that version and state."""
        where = {"w_id": container_id, "w_version": seen_version, "w_state": source}
        if self._one_statement and len(new_events) <= 1:
            return self._commit_in_one_statement(values, where, record, time, container_id,
                                                 new_events)
        try:
            with self.connections.write() as connection:
                if values is None:
                    result = connection.execute(_DELETE_IF_UNMOVED, where)
                else:
                    result = connection.execute(self._swap(tuple(values)), {**values, **where})
                if result.rowcount != 1:
                    raise _Unmoved
                connection.execute(_INSERT_AUDIT, dict(record))
                _insert_events(connection, time, container_id, new_events)
        except _Unmoved:
            return False
        return True

    def _commit_in_one_statement(self, values: Mapping[str, Any] | None,
                                 where: Mapping[str, Any], record: Mapping[str, Any],
                                 time: datetime,  container_id: str,
                                 new_events: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """PostgreSQL (:mod:`fsm.store.one_statement`). Two or more events (a stop's ``die``
        and ``stop``) take the transaction instead: its inserts keep the events' ids in their
        order, which sibling ``WITH`` clauses do not promise."""
        columns = None if values is None else tuple(values)
        key = (columns, bool(new_events))
        statement = self._one_statements.get(key)
        if statement is None:
            change = _DELETE_IF_UNMOVED if columns is None else self._swap(columns)
            statement = transition_statement(change, audit, events if new_events else None)
            self._one_statements[key] = statement
        params = {**(values or {}), **where,
                  **{AUDIT_PREFIX + name: value for name, value in record.items()}}
        for action, attributes in new_events:
            params.update({EVENT_PREFIX + "time": time, EVENT_PREFIX + "container_id":
                           container_id, EVENT_PREFIX + "action": action,
                           EVENT_PREFIX + "attributes": attributes})
        changed: int = self.connections.write_statement(statement, params)
        return changed == 1

    def renew_lease(self, container_id: str, version: int, owner: str, until: datetime) -> bool:
        """Push an in-flight row's lease to ``until``; False when it is no longer ours at that
        version."""
        with self.connections.write() as connection:
            result = connection.execute(_RENEW_LEASE, {"w_id": container_id, "w_version": version,
                                                       "w_owner": owner, "until": until})
        return bool(result.rowcount == 1)

    def _swap(self, columns: tuple[str, ...]) -> Update:
        statement = self._swaps.get(columns)
        if statement is None:
            statement = (update(containers).where(_SAME_ROW)
                         .values({column: bindparam(column) for column in columns}))
            self._swaps[columns] = statement
        return statement


class _Unmoved(Exception):
    """Someone else moved the row first: the write transaction is rolled back."""


def listing(states: Sequence[str] | None) -> Select[Any]:
    """The listing of containers in ``states`` (``None``: every one), newest first, with its
    values bound (operators may ``EXPLAIN`` it: ``tests/test_listing.py`` does)."""
    if states is None:
        return _LIST_ALL
    return _LIST_STATES.params(states=list(states))


#: :class:`ContainerInfo`'s fields, each with the column of :data:`LIVE_COLUMNS` it is read from
_INFO_FROM = tuple(ContainerInfo.__dataclass_fields__)


def info(row: Row[Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` straight from a row of :data:`LIVE_COLUMNS`: a listing of
    thousands of rows need not build a :class:`LiveContainer` for each."""
    mapping = row._mapping
    return ContainerInfo(**{name: mapping[name] for name in _INFO_FROM})


def live(row: Row[Any]) -> LiveContainer:
    """A :class:`LiveContainer` from a row of :data:`LIVE_COLUMNS` (extra columns ignored)."""
    mapping = row._mapping
    return LiveContainer(**{column.name: mapping[column.name] for column in LIVE_COLUMNS})


def _insert_events(connection: Any, time: datetime, container_id: str,
                   new_events: Iterable[tuple[str, dict[str, Any]]]) -> None:
    rows = [{"time": time, "container_id": container_id, "action": action,
             "attributes": attributes} for action, attributes in new_events]
    if rows:
        connection.execute(_INSERT_EVENT, rows)
