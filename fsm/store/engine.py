"""Engines with the settings berth relies on, and one connection per operation.

SQLite gets WAL, foreign keys and a busy timeout, and its write transactions begin with
``BEGIN IMMEDIATE``: two writers then queue on the busy timeout instead of one failing on a read
lock it cannot upgrade. Reads begin a plain deferred transaction, which in WAL mode blocks no
writer. PostgreSQL connections are pinged on checkout (SQLAlchemy's ``pool_pre_ping``), so a
server restart costs one failed ping, not a failed operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from fsm.errors import BerthError, ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: set on a connection's ``info`` while it begins a write transaction
_IMMEDIATE = "berth_immediate"
#: set on a SQLite connection's ``info`` while it runs a lone read
_READING = "berth_reading"
_T = TypeVar("_T")


class DatabaseUnavailable(BerthError):
    """The database connection was lost during a write: nothing of it was committed."""


def open_engine(url: str, *, create_sqlite_file: bool = False) -> Engine:
    """An engine for ``url``. A SQLite file must exist, or its directory at least: a mistyped
    path is an error, never a new empty database, unless ``create_sqlite_file`` (the embedded
    default, whose data root berth makes itself)."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(
            "database_url", url, "an SQLAlchemy URL such as sqlite:////path/berth.db or "
            "postgresql+psycopg://user@host/db"
        ) from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, parsed, create_sqlite_file)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            return create_engine(parsed, pool_pre_ping=True, pool_use_lifo=True)
        except (NoSuchModuleError, ImportError) as error:
            raise ConfigError(
                "database_url", url, "a PostgreSQL URL needs psycopg: pip install 'berth[postgres]'"
            ) from error
    raise ConfigError("database_url", url, "a sqlite:/// or postgresql:// URL")


def _sqlite_engine(url: str, parsed: URL, create: bool) -> Engine:
    database = parsed.database
    if not database or database == ":memory:":
        raise ConfigError(
            "database_url", url, "a SQLite file (several processes share it), not :memory:"
        )
    path = Path(database)
    if not path.parent.is_dir():
        if not create:
            raise ConfigError("database_url", url,
                              f"a SQLite file in an existing directory ({path.parent} does not "
                              "exist)")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        import os

        # made here so that it is 0600 from the start: it holds every container's environment
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                           pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's "begin" below issues BEGIN itself, not pysqlite's implicit one
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.info.get(_READING, False):
            return  # a lone read runs in the driver's autocommit: no transaction, no lock
        immediate = connection.info.get(_IMMEDIATE, False)
        # on the driver's connection itself: SQLAlchemy's execution machinery would cost as
        # much again as the statement, on every transaction
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` in a write transaction (on SQLite ``BEGIN IMMEDIATE``, so it
    waits for other writers instead of failing), committed at the end of the block."""
    with engine.connect() as connection, _begin_immediately(connection):
        yield connection


@contextmanager
def _begin_immediately(connection: Connection) -> Iterator[None]:
    """Begin a write transaction on ``connection`` (committed when the block ends)."""
    connection.info[_IMMEDIATE] = True
    try:
        with connection.begin():
            connection.info[_IMMEDIATE] = False
            yield
    finally:
        connection.info[_IMMEDIATE] = False


def _unavailable(error: DBAPIError) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"lost the connection to the database while writing "
                               f"({error.orig}); a change is committed whole or not at all: "
                               "read it again before retrying")


class Connections:
    """One pooled connection per operation and thread: :meth:`operation` holds it, and every
    read and write inside uses it. No transaction stays open between statements: :meth:`read`
    ends its own, :meth:`write` commits or rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._held = threading.local()

    @contextmanager
    def operation(self) -> Iterator[Connection]:
        """The connection this thread's operation uses (nested operations share it)."""
        held: Connection | None = getattr(self._held, "connection", None)
        if held is not None:
            yield held
            return
        with self.engine.connect() as connection:
            self._held.connection = connection
            try:
                yield connection
            finally:
                self._held.connection = None

    def read(self, reading: Callable[[Connection], _T]) -> _T:
        """``reading(connection)`` outside any transaction: each statement on its own, as the
        driver's autocommit runs it (no BEGIN and ROLLBACK around a SELECT: on PostgreSQL two
        round trips fewer, on SQLite no lock). A connection the server has dropped meanwhile (a
        restart, ``pg_terminate_backend``) is replaced and the read made once more: a read
        changes nothing, so it is safe to repeat."""
        with self.operation() as connection:
            self._autocommit(connection, True)
            connection.info[_READING] = True
            try:
                for attempt in (1, 2):
                    try:
                        return reading(connection)
                    except DBAPIError as error:
                        if attempt == 2 or not error.connection_invalidated:
                            raise
                    finally:
                        if connection.in_transaction():
                            connection.rollback()
            finally:
                connection.info[_READING] = False
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _autocommit(self, connection: Connection, on: bool) -> None:
        """PostgreSQL: switch the connection to autocommit for reads, back for writes (a
        setting of the driver's connection, no round trip). SQLite's driver is in autocommit
        anyway; berth begins its transactions itself (``_on_begin``)."""
        if self._sqlite:
            return
        level = connection.get_execution_options().get("isolation_level")
        if on and level != "AUTOCOMMIT":
            connection.execution_options(isolation_level="AUTOCOMMIT")
        elif not on and level == "AUTOCOMMIT":
            connection.execution_options(isolation_level=connection.default_isolation_level)

    def first(self, statement: Executable, params: Mapping[str, Any] | None = None
              ) -> Row[Any] | None:
        """The first row of a SELECT (:meth:`read`)."""
        return self.read(lambda connection: connection.execute(statement, params).first())

    def all(self, statement: Executable, params: Mapping[str, Any] | None = None
            ) -> Sequence[Row[Any]]:
        """Every row of a SELECT (:meth:`read`)."""
        return self.read(lambda connection: connection.execute(statement, params).all())

    def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None (:meth:`read`)."""
        return self.read(lambda connection: connection.execute(statement, params).scalar())

    def scalars(self, statement: Executable, params: Mapping[str, Any] | None = None
                ) -> list[Any]:
        """The first column of every row (:meth:`read`)."""
        return self.read(lambda connection: list(connection.execute(statement, params).scalars()))

    def write_statement(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        """One statement that writes and commits by itself (autocommit: no BEGIN, no COMMIT);
        the first column of its first row. Never repeated: a lost connection is a
        :class:`DatabaseUnavailable`, as for :meth:`write`."""
        with self.operation() as connection:
            self._autocommit(connection, True)
            try:
                return connection.execute(statement, params).scalar()
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                raise _unavailable(error) from error
            finally:
                if connection.in_transaction():
                    connection.rollback()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed at the end of the block (rolled back
        if it raises). A connection lost on the way is a :class:`DatabaseUnavailable`: nothing
        of the transaction was committed, and it is not repeated behind the caller's back."""
        with self.operation() as connection:
            if connection.in_transaction():
                connection.rollback()  # a read left open by the caller: no upgrade of its lock
            self._autocommit(connection, False)
            try:
                with _begin_immediately(connection):
                    yield connection
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
                raise _unavailable(error) from error

    def dispose(self) -> None:
        self.engine.dispose()
