"""The statements of every transition, run on the pooled DBAPI connection itself.

A lifecycle (create, start, exit, remove) is eight commits and about thirty statements. Through
SQLAlchemy Core each statement costs ~100 µs of Python here before the database sees it
(execution context, parameter processing, result wrapping), which made berth ten times the cost
of the same commits written by hand (``benchmarks/fsm_overhead.py``). The statements are few,
fixed and simple, so they are written out here and executed with the driver's cursor, on a
connection checked out from the engine's pool (the pragmas of ``fsm.database`` apply) — the
models and migrations stay the schema's only definition: each value is stored by SQLAlchemy's own
bind processor for its model column's type (JSON; booleans as 0/1 on SQLite), or for
``UTCDateTime`` by the type's own conversion (naive UTC; on SQLite the text SQLAlchemy writes,
``tests/test_stored_time.py``), so a row written here is the row the ORM would write.

Everything else (listing aside, :mod:`fsm.listing`) still goes through SQLAlchemy.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, FromClause, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.types import String, TypeEngine

from fsm.database import checkout_for_retrying_reads
from fsm.listing import LIVE_FROM, LIVE_SELECT
from models import Container, ContainerEvent, TransitionAudit
from models.base import UTCDateTime, naive_utc, sqlite_stored_time

_AUDIT_COLUMNS = ("container_id", "trigger", "source", "dest", "started_at", "finished_at",
                  "error", "actor")
_EVENT_COLUMNS = ("time", "container_id", "action", "attributes")
_CONTAINER_COLUMNS = tuple(column.name for column in Container.__table__.columns)
#: SQLite connections a forked child inherited: kept open and unused (:meth:`SQL.thread_connection`)
_LEFT_BY_PARENT: list[Any] = []
_T = TypeVar("_T")


class SQL:
    """The hot-path statements for one engine, in its driver's parameter style."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        #: PEP 249: each driver module has its own exceptions
        self.IntegrityError: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        self.Error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._containers = _StoredColumns(Container.__table__, engine.dialect)
        self._transitions = _StoredColumns(TransitionAudit.__table__, engine.dialect)
        self._events = _StoredColumns(ContainerEvent.__table__, engine.dialect)
        self._container_row = self._containers.row_of(_CONTAINER_COLUMNS)
        self._audit_row = self._transitions.row_of(_AUDIT_COLUMNS)
        self._event_row = self._events.row_of(_EVENT_COLUMNS)
        self._updates: dict[tuple[str, ...], str] = {}
        #: the connection an operation holds (:meth:`held`), per thread
        self._held = threading.local()
        mark = "?" if self.sqlite else "%s"
        self._mark = mark
        self.select_live = (f"SELECT {LIVE_SELECT} FROM {LIVE_FROM} "
                            f"WHERE c.id = {mark} OR c.name = {mark} LIMIT 1")
        self.select_live_in_states = (
            f"SELECT {LIVE_SELECT}, c.lease_expires_at FROM {LIVE_FROM} "
            f"WHERE c.node = {mark} AND c.state IN ({{marks}})")
        self.select_id_by_name = f"SELECT id FROM containers WHERE name = {mark}"
        self.select_image = (f"SELECT id, name, size, storage_driver, created_at FROM images "
                             f"WHERE name = {mark} OR id = {mark}")
        self.delete_if_unmoved = (f"DELETE FROM containers WHERE id = {mark} AND version = {mark}"
                                  f" AND state = {mark}")
        self.insert_audit = _insert("transitions", _AUDIT_COLUMNS, mark)
        self.insert_event = _insert("events", _EVENT_COLUMNS, mark)
        self.insert_container = _insert("containers", _CONTAINER_COLUMNS, mark)
        self.renew_lease = (f"UPDATE containers SET lease_expires_at = {mark} WHERE id = {mark} "
                            f"AND version = {mark} AND owner = {mark}")
        #: PostgreSQL: a transition committed as one statement (:meth:`commit_change`)
        self._one_statements: dict[tuple[str, bool, bool], str] = {}
        if not self.sqlite:
            self._audit_if_changed = _insert_if_changed(
                cast(Table, TransitionAudit.__table__), _AUDIT_COLUMNS, engine.dialect)
            self._event_if_changed = _insert_if_changed(
                cast(Table, ContainerEvent.__table__), _EVENT_COLUMNS, engine.dialect)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep one pooled connection for this thread's statements until the block ends: an
        operation (load, then several transitions) checks out once instead of per statement
        (on PostgreSQL a checkout may ping the server). No transaction stays open across the
        block's side effects: only the connection is kept. (On SQLite each thread keeps its
        own connection anyway: :meth:`thread_connection`.)"""
        if self.sqlite or getattr(self._held, "pooled", None) is not None:
            yield
            return
        self._held.pooled = checkout_for_retrying_reads(self.engine)
        try:
            yield
        finally:
            pooled, self._held.pooled = self._held.pooled, None
            _end_autocommit(pooled.driver_connection)
            pooled.close()

    def thread_connection(self) -> Any:
        """SQLite: this thread's own connection, opened once through the engine (so its pragmas
        apply) and kept, outside the pool: a checkout and checkin per operation cost a tenth of
        a lifecycle (``benchmarks/fsm_overhead.py``). Between statements it holds no
        transaction, hence no lock. It closes with its thread, or :meth:`close`; a forked child
        opens its own, as SQLite requires, and leaves the parent's alone."""
        pid = os.getpid()
        own = getattr(self._held, "sqlite", None)
        if own is not None and own[0] == pid:
            return own[1]
        if own is not None:
            # closing a connection in the child could act on the parent's database files
            _LEFT_BY_PARENT.append(own[1])
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()
        self._held.sqlite = (pid, connection)
        return connection

    def close(self) -> None:
        """Close this thread's own SQLite connection (the next statement opens another)."""
        own = getattr(self._held, "sqlite", None)
        self._held.sqlite = None
        if own is not None and own[0] == os.getpid():
            own[1].close()

    def _connection(self) -> tuple[Any, Any]:
        """The driver's connection: on SQLite the thread's own (:meth:`thread_connection`);
        else the one held (:meth:`held`), else a fresh checkout, which comes second, for the
        caller to return to the pool (a plain call rather than one more context manager: this
        runs for every statement of a transition)."""
        if self.sqlite:
            return self.thread_connection(), None
        pooled = getattr(self._held, "pooled", None)
        if pooled is not None:
            return pooled.driver_connection, None
        pooled = checkout_for_retrying_reads(self.engine)
        return pooled.driver_connection, pooled

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a write transaction, committed at the end (rolled back on an error).
        SQLite's is ``BEGIN IMMEDIATE``, as ``fsm.database`` begins every transaction."""
        connection, checked_out = self._connection()
        try:
            if not self.sqlite:
                _end_autocommit(connection)
            cursor = connection.cursor()
            try:
                if self.sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.close()
        finally:
            if checked_out is not None:
                checked_out.close()

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A cursor for lone statements: no transaction around them (PostgreSQL: autocommit, no
        BEGIN/ROLLBACK round trips; SQLite: no write lock). A connection held by an operation
        (:meth:`held`) stays in autocommit until the operation ends: its reads and one-statement
        commits all run so, and switching costs Python each time."""
        connection, checked_out = self._connection()
        try:
            if not self.sqlite and not connection.autocommit:
                connection.autocommit = True
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        finally:
            if checked_out is not None:
                _end_autocommit(connection)
                checked_out.close()

    def read(self, run: Callable[[Any], _T]) -> _T:
        """``run(cursor)`` on a :meth:`reading` cursor.

        On PostgreSQL a connection in use within the last second is not pinged
        (:func:`fsm.database._ping_when_idle`); if the server has dropped it since (a restart),
        the read fails, before any side effect: an operation starts with its reads. It is then
        made again once, on a new pool: every pooled connection is as old."""
        for attempt in (1, 2):
            connection = None
            try:
                with self.reading() as cursor:
                    connection = cursor.connection
                    return run(cursor)
            except self.Error as error:
                if attempt == 2 or self.sqlite or not self.engine.dialect.is_disconnect(
                        cast(Any, error), connection, None):
                    raise
            self._replace_pool()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def fetch_one(self, statement: str, params: Sequence[Any]) -> Any:
        """The first row of a lone SELECT, or None (:meth:`read`)."""

        def first(cursor: Any) -> Any:
            cursor.execute(statement, params)
            return cursor.fetchone()

        return self.read(first)

    def fetch_all(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """Every row of a lone SELECT (:meth:`read`)."""

        def every(cursor: Any) -> list[Any]:
            cursor.execute(statement, params)
            return list(cursor.fetchall())

        return self.read(every)

    def _replace_pool(self) -> None:
        """After a lost server connection: a new pool, and a new connection for the operation
        holding the lost one (which SQLAlchemy closes)."""
        held = getattr(self._held, "pooled", None)
        if held is not None:
            held.invalidate()
        self.engine.dispose()
        if held is not None:
            self._held.pooled = checkout_for_retrying_reads(self.engine)

    def commit_change(self, change: tuple[str, Sequence[Any]], audit: list[Any] | None,
                      time: datetime, container_id: str,
                      events: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Commit ``change`` (the INSERT, compare-and-swap UPDATE or DELETE of one ``containers``
        row) with its ``transitions`` audit row (from :meth:`audit_row`) and ``events``, all or
        nothing. False, and nothing written, when ``change`` found no row to move.

        On PostgreSQL this is one statement, its other rows inserted by data-modifying ``WITH``
        clauses that select from the changed row: a statement is a transaction of its own, and
        each statement of ``BEGIN``, change, audit, event, ``COMMIT`` would be a round trip to
        the server (``benchmarks/fsm_overhead.py``: the same commits in 0.4 of the time). Two
        or more events (rare: a stop's ``die`` and ``stop``) take the explicit transaction, whose
        statements keep the events' ids in their order. SQLite has no round trips and no
        data-modifying ``WITH``: always the explicit transaction."""
        rows = [self._event_row([time, container_id, action, attributes])
                for action, attributes in events]
        if self.sqlite or len(rows) > 1:
            with self.transaction() as cursor:
                cursor.execute(*change)
                if cursor.rowcount != 1:
                    return False
                if audit is not None:
                    cursor.execute(self.insert_audit, audit)
                if rows:
                    cursor.executemany(self.insert_event, rows)
            return True
        key = (change[0], audit is not None, bool(rows))
        statement = self._one_statements.get(key)
        if statement is None:
            clauses = [f"changed AS ({change[0]} RETURNING 1)"]
            if audit is not None:
                clauses.append(f"audit AS ({self._audit_if_changed})")
            if rows:
                clauses.append(f"event AS ({self._event_if_changed})")
            statement = f"WITH {', '.join(clauses)} SELECT count(*) FROM changed"
            self._one_statements[key] = statement
        params = [*change[1], *(audit or ()), *(rows[0] if rows else ())]
        with self.reading() as cursor:
            cursor.execute(statement, params)
            changed: int = cursor.fetchone()[0]
        return changed == 1

    def live_in_states(self, node: str, states: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
        """This node's rows in ``states``, each with its ``lease_expires_at`` last."""
        marks = ", ".join([self._mark] * len(states))
        return self.select_live_in_states.format(marks=marks), (node, *states)

    def compare_and_swap(self, values: Mapping[str, Any], container_id: str, version: int,
                         state: str) -> tuple[str, tuple[Any, ...]]:
        """``UPDATE containers SET <values> WHERE id AND version AND state``; the statement text
        is kept per set of columns."""
        columns = tuple(values)
        statement = self._updates.get(columns)
        if statement is None:
            assignments = ", ".join(f"{column} = {self._mark}" for column in columns)
            statement = (f"UPDATE containers SET {assignments} WHERE id = {self._mark} "
                         f"AND version = {self._mark} AND state = {self._mark}")
            self._updates[columns] = statement
        return statement, (*self.stored(values), container_id, version, state)

    def stored(self, values: Mapping[str, Any]) -> list[Any]:
        """``containers`` column values as the driver stores them."""
        return self._containers.values(values)

    def container_row(self, values: Mapping[str, Any]) -> list[Any]:
        """Every column of a new ``containers`` row, in ``insert_container``'s order."""
        return self._container_row([values.get(column) for column in _CONTAINER_COLUMNS])

    def audit_row(self, container_id: str, trigger: str, source: str, dest: str,
                  started_at: datetime, finished_at: datetime, error: str,
                  actor: str) -> list[Any]:
        """A ``transitions`` row, in ``insert_audit``'s order."""
        return self._audit_row([container_id, trigger, source, dest, started_at, finished_at,
                                error, actor])


def _end_autocommit(connection: Any) -> None:
    """PostgreSQL: back to transactions, as SQLAlchemy expects a pooled connection (a closed
    one, lost with the server, is left as it is)."""
    if connection.autocommit and not connection.closed:
        connection.autocommit = False


def _insert(table: str, columns: Sequence[str], mark: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


def _insert_if_changed(table: Table, columns: Sequence[str], dialect: Dialect) -> str:
    """PostgreSQL: ``INSERT INTO table (columns) SELECT <parameters> FROM changed`` (the
    ``WITH`` clause of :meth:`SQL.commit_change`), one row only if the change was made. A
    parameter in a select list has no column to take its type from, so each is cast to its
    column's type; strings to the type without its length, since an explicit cast to
    ``VARCHAR(n)`` truncates where the insert itself refuses a value too long."""
    casts = []
    for name in columns:
        type_ = table.columns[name].type
        if isinstance(type_, String):
            type_ = type(type_)()
        casts.append(f"CAST(%s AS {type_.compile(dialect=dialect)})")
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {', '.join(casts)} FROM changed")


class _StoredColumns:
    """One table's values as its driver stores them, by SQLAlchemy's bind processor of each
    model column's type for this dialect (``None`` where the driver takes the value as it is:
    most columns, and skipping the call is a tenth of a transition's Python). A
    :class:`~models.base.UTCDateTime` on SQLite is stored by
    :func:`~models.base.sqlite_stored_time`, the same text at a sixth of the cost
    (``tests/test_stored_time.py`` compares the two)."""

    def __init__(self, table: FromClause, dialect: Dialect) -> None:
        self._store: dict[str, Callable[[Any], Any] | None] = {
            column.name: _processor(column.type, dialect) for column in table.columns
        }

    def values(self, values: Mapping[str, Any]) -> list[Any]:
        store = self._store
        return [value if (processor := store[column]) is None else processor(value)
                for column, value in values.items()]

    def row_of(self, columns: Sequence[str]) -> Callable[[list[Any]], list[Any]]:
        """A function storing a row of ``columns``' values, given in that order (in place)."""
        processed = [(index, processor) for index, column in enumerate(columns)
                     if (processor := self._store[column]) is not None]

        def row(values: list[Any]) -> list[Any]:
            for index, processor in processed:
                values[index] = processor(values[index])
            return values

        return row


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    if isinstance(type_, UTCDateTime):
        return sqlite_stored_time if dialect.name == "sqlite" else naive_utc
    processor: Callable[[Any], Any] | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor
