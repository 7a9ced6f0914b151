"""Reading the database through its DBAPI driver alone, for ``berth ps``: no SQLAlchemy import.

Importing SQLAlchemy, the models and the orchestrator is most of the CLI's cold start (about
0.5 s of CPU here, against ~15 ms for ``sqlite3``), and ``ps`` is run by hand and by scripts in
loops. So ``ps`` first tries this path: open the database with ``sqlite3`` (or ``psycopg``),
check that its schema is the revision this berth was built for, and run the statement of
:mod:`fsm.listing`. Whenever that is not plainly possible (no database file yet, a URL with
options, psycopg missing, a connection refused, another schema revision), :func:`open_reader`
returns ``None`` and the command goes through :class:`fsm.Orchestrator`, which creates,
upgrades or explains (``SchemaOutOfDate``, a refused connection) as every other command does.

Unlike the orchestrator, this path never runs recovery: listing has no side effect.

On PostgreSQL, importing psycopg alone costs more than all the rest of ``berth ps``: the
console script's quick path (:mod:`fsm.quick_ps`) first asks the ``psql`` client
(:mod:`fsm.psql_read`), and comes here only where that fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fsm.listing import fetch_listing, list_containers
from fsm.revisions import head_revision

if TYPE_CHECKING:
    from fsm.info import ContainerInfo

_Read = TypeVar("_Read")

#: how long a read waits for a writer holding SQLite's lock (as the engine's busy timeout)
SQLITE_BUSY_TIMEOUT_S = 10.0
#: how long a read waits for PostgreSQL to accept the connection (then the orchestrator explains)
POSTGRESQL_CONNECT_TIMEOUT_S = 10


class DirectReader:
    """One DBAPI connection, at the head schema revision, for read-only statements."""

    def __init__(self, connection: Any, dialect: str, error: type[Exception]) -> None:
        self.connection = connection
        self.dialect = dialect
        #: the driver's PEP 249 ``Error``: whatever the database refuses
        self.error = error

    def list(self, states: Sequence[str] | None) -> list[ContainerInfo] | None:
        """What :meth:`fsm.Orchestrator.list` returns, for the same states; ``None`` if the
        database refused (locked past the busy timeout, a read-only WAL index...): the
        orchestrator then reads it, or explains why it cannot."""
        return self._read(lambda cursor: list_containers(cursor, self.dialect, states))

    def fetch(self, columns: str, states: Sequence[str] | None) -> Sequence[Any] | None:
        """The listing's rows of ``columns``, as the driver returns them; ``None`` if the
        database refused."""
        return self._read(lambda cursor: fetch_listing(cursor, self.dialect, states, columns))

    def _read(self, read: Callable[[Any], _Read]) -> _Read | None:
        try:
            with closing(self.connection.cursor()) as cursor:
                return read(cursor)
        except self.error:
            return None

    def close(self) -> None:
        self.connection.close()


def open_reader(database_url: str) -> DirectReader | None:
    """A reader for ``database_url``, or ``None`` where the orchestrator must do it."""
    opened = _connect(database_url)
    if opened is None:
        return None
    reader = DirectReader(*opened)
    try:
        with closing(reader.connection.cursor()) as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            revisions = cursor.fetchall()
    except Exception:  # no such table, locked...: the orchestrator explains it
        reader.close()
        return None
    if revisions != [(head_revision(),)]:
        reader.close()
        return None
    return reader


def libpq_uri(database_url: str) -> str | None:
    """The libpq URI (``postgresql://...``) of a PostgreSQL ``database_url``; ``None`` for any
    other database."""
    scheme, sep, rest = database_url.partition("://")
    if sep and scheme in ("postgresql", "postgresql+psycopg"):
        # SQLAlchemy hands the URL's query (host=/run/postgresql, port, sslmode...) to psycopg
        # as connection parameters; libpq reads the same ones from its own URI form
        return f"postgresql://{rest}"
    return None


def _connect(url: str) -> tuple[Any, str, type[Exception]] | None:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    if scheme == "sqlite" and "?" not in rest:
        return _connect_sqlite(rest)
    conninfo = libpq_uri(url)
    return None if conninfo is None else _connect_postgresql(conninfo)


def _connect_sqlite(rest: str) -> tuple[Any, str, type[Exception]] | None:
    import sqlite3

    # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy reads them
    if not rest.startswith("/") or len(rest) < 2:
        return None
    path = Path(rest[1:])
    if not path.is_file():
        return None  # the orchestrator creates it (0600) and its schema
    try:
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.Error:
        return None
    return connection, "sqlite", sqlite3.Error


def _connect_postgresql(conninfo: str) -> tuple[Any, str, type[Exception]] | None:
    try:
        import psycopg
    except ImportError:
        return None
    with suppress(Exception):
        connection = psycopg.connect(conninfo, autocommit=True,
                                     connect_timeout=POSTGRESQL_CONNECT_TIMEOUT_S)
        return connection, "postgresql", psycopg.Error
    return None
