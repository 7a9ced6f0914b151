"""``berth ps``'s fast path: the listing read from a SQLite file with the standard library.

Operators run ``berth ps`` by hand and scripts run it in loops. Through the orchestrator it
imports SQLAlchemy, the models and the drivers (about half a second of CPU here) before its one
query; this path costs a few milliseconds more than the interpreter's own start-up
(``benchmarks/scale.py`` measures both against ``python3 -c pass``; ``docs/performance.md`` has
the figures). So the console script (:mod:`fsm.cli.quick_ps`) first asks this module, which
answers only where it plainly can: a plain ``sqlite:///PATH`` URL whose file exists and whose
schema is at :data:`SCHEMA_REVISION`. Anything else (PostgreSQL, a missing file, another
revision, any ``sqlite3`` error, a value it cannot decode) gives ``None``, and the full CLI
answers through the orchestrator, which creates, upgrades or explains as every command does.
The file is opened ``mode=rw``, so a database is never created here, and ``query_only``: this
path writes nothing, and, unlike the orchestrator, runs no recovery.

Standard library only: it must not import SQLAlchemy, nor anything of berth that does. It is the
only SQL outside the rest of :mod:`fsm.store`; it reads columns by name (:class:`sqlite3.Row`),
and ``tests/test_listing.py`` ties every column its statements name to :mod:`models`, its
revision to the head, and its output to the full path's.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import NamedTuple

from fsm.store.revision import HEAD

#: the schema revision these statements were written for: a database at any other is left to
#: the orchestrator (which upgrades the embedded one, or refuses with the fix). A new migration
#: bumps it, once this module's columns are checked against it (a test compares it to the head)
SCHEMA_REVISION = HEAD
#: how long a read waits for a writer holding SQLite's lock (as the engine's busy timeout)
BUSY_TIMEOUT_S = 10.0

#: the columns read, of ``containers AS c``
CONTAINER_COLUMNS = ("id", "name", "image", "state", "exit_code", "config", "created_at",
                     "started_at", "finished_at")
_ROWS = ", ".join(f"c.{column}" for column in CONTAINER_COLUMNS)


def _statement(select: str, every: bool) -> str:
    """Newest first: the order the listing indexes give by a backward walk, without a sort."""
    where = "" if every else " WHERE c.state = 'running'"
    return (f"SELECT {select} FROM containers AS c{where} "
            "ORDER BY c.created_at DESC, c.id DESC")


#: every statement, by (what is read, every state or only running): ``ps``, ``-a``, ``-q``, ``-aq``
STATEMENTS = {(what, every): _statement(select, every)
              for what, select in (("rows", _ROWS), ("ids", "c.id")) for every in (False, True)}


class ListedContainer(NamedTuple):
    """What a line of ``berth ps`` shows of a container."""

    id: str
    name: str
    image: str
    command: list[str]
    state: str
    exit_code: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def list_containers(database_url: str, every: bool) -> list[ListedContainer] | None:
    """The running containers (``every``: all of them), newest first, as
    :meth:`fsm.Orchestrator.list` orders them; ``None`` where this path cannot plainly read
    them."""
    rows = _read(database_url, STATEMENTS["rows", every])
    if rows is None:
        return None
    try:
        return [ListedContainer(row["id"], row["name"], row["image"],
                                json.loads(row["config"])["cmd"], row["state"],
                                row["exit_code"], _time(row["created_at"]),
                                _maybe_time(row["started_at"]), _maybe_time(row["finished_at"]))
                for row in rows]
    except (ValueError, TypeError, KeyError):  # not as SQLAlchemy stores them: let it read
        return None


def list_ids(database_url: str, every: bool) -> list[str] | None:
    """The ids of :func:`list_containers`, in its order."""
    rows = _read(database_url, STATEMENTS["ids", every])
    return None if rows is None else [row["id"] for row in rows]


def sqlite_file(database_url: str) -> str | None:
    """The file of a plain ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` URL, as
    SQLAlchemy reads them; ``None`` for any other URL (another database or driver, query
    options, an in-memory database)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or "?" in database_url:
        return None
    return database_url[len(prefix):] or None


def _read(database_url: str, statement: str) -> list[sqlite3.Row] | None:
    path = sqlite_file(database_url)
    if path is None:
        return None
    # a URI, for mode=rw: open an existing file, never create one
    escaped = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    uri = f"file:{'//' if path.startswith('/') else ''}{escaped}?mode=rw"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error:
        return None
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA query_only = ON")
        revisions = [row[0] for row in connection.execute(
            "SELECT version_num FROM alembic_version")]
        if revisions != [SCHEMA_REVISION]:
            return None
        return connection.execute(statement).fetchall()
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def _time(stored: str) -> datetime:
    """A timestamp as SQLAlchemy stores it on SQLite (naive UTC text) → aware UTC."""
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)


def _maybe_time(stored: str | None) -> datetime | None:
    return None if stored is None else _time(stored)
