"""Reading the database through its DBAPI driver alone, for ``berth ps``: no SQLAlchemy import.

Importing SQLAlchemy, the models and the orchestrator is most of the CLI's cold start (about
0.5 s of CPU here, against ~15 ms for ``sqlite3``), and ``ps`` is run by hand and by scripts in
loops. So ``ps`` first tries this path: open the database with ``sqlite3`` (or ``psycopg``),
check that its schema is the revision this berth was built for, and run the statement of
:mod:`fsm.listing`. Whenever that is not plainly possible (no database file yet, a URL with
options, psycopg missing, a connection refused, another schema revision), :func:`read_directly`
returns ``None`` and the command goes through :class:`fsm.Orchestrator`, which creates,
upgrades or explains (``SchemaOutOfDate``, a refused connection) as every other command does.

Unlike the orchestrator, this path never runs recovery: listing has no side effect.

On PostgreSQL, importing psycopg alone costs more than all the rest of ``berth ps``: the
console script's quick path (:mod:`fsm.quick_ps`) first asks the ``psql`` client
(:mod:`fsm.psql_read`), and comes here only where that fails.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, TypeVar

from fsm.revisions import head_revision

_Read = TypeVar("_Read")

#: how long a read waits for a writer holding SQLite's lock (as the engine's busy timeout)
SQLITE_BUSY_TIMEOUT_S = 10.0
#: how long a read waits for PostgreSQL to accept the connection (then the orchestrator explains)
POSTGRESQL_CONNECT_TIMEOUT_S = 10


def read_directly(database_url: str, read: Callable[[Any, str], _Read]) -> _Read | None:
    """``read(cursor, dialect)`` on a connection of its own, once the schema is at the head
    revision; ``None`` where that is not plainly possible, or the database refused the read
    (locked past the busy timeout, a read-only WAL index...): the orchestrator then reads it,
    or explains why it cannot."""
    opened = _connect(database_url)
    if opened is None:
        return None
    connection, dialect, error = opened
    try:
        with closing(connection.cursor()) as cursor:
            try:
                cursor.execute("SELECT version_num FROM alembic_version")
                revisions = cursor.fetchall()
            except Exception:  # no such table, locked...: the orchestrator explains it
                return None
            if revisions != [(head_revision(),)]:
                return None
            try:
                return read(cursor, dialect)
            except error:
                return None
    finally:
        connection.close()


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
