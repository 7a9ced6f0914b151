"""Listing containers (``ps``): one SQL statement and one row decoder, shared by
:meth:`fsm.Orchestrator.list` and the ``berth ps`` command's fast path.

Why plain SQL and the DBAPI's own values rather than an ORM query: ``ps`` is the command an
operator runs most, on the largest tables. Decoding the columns here (a JSON parse, a timestamp
parse) costs about half of what SQLAlchemy's result processing does per row, and the same code
lets ``berth ps`` answer from the stdlib's ``sqlite3`` (or ``psycopg``) without importing
SQLAlchemy at all (about 0.4 s of the CLI's cold start). The statement reads the columns as
stored, so it must follow the models: ``tests/test_views.py`` checks that what it returns equals
:meth:`~fsm.Orchestrator.get` for every container, on both databases.

The order (``created_at DESC, id DESC``) is the one the indexes of migration 0005 give by a
backward walk: no sort, however many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fsm import states
from fsm.errors import ConfigError
from fsm.info import ContainerInfo
from fsm.stored import read_json, read_time

#: the columns, in :class:`ContainerInfo`'s field order (``image`` is the image's name)
_COLUMNS = (
    "c.id, c.name, i.name, c.state, c.exit_code, c.error, c.pid, c.created_at, c.started_at, "
    "c.finished_at, c.has_been_started_before, c.restart_count, c.manually_stopped, c.config, "
    "c.host_config, c.owner, c.node"
)


def list_states(all: bool, state: str | Iterable[str] | None) -> list[str] | None:
    """Which states to list: ``state`` (one or several), else every one (``all``), else
    ``running``. ``None`` means every state."""
    if state is not None:
        wanted = [state] if isinstance(state, str) else list(state)
        unknown = [s for s in wanted if s not in states.STATES or s == states.REMOVED]
        if unknown or not wanted:
            raise ConfigError("state", unknown[0] if unknown else wanted,
                              f"one or more of {', '.join(states.STATES[:-1])}")
        return wanted
    return None if all else [states.RUNNING]


def list_statement(dialect: str, states: Sequence[str] | None) -> str:
    """The SELECT for ``states`` (``None``: every container), newest first, with one
    placeholder per state in the DBAPI's own style (``?`` for sqlite3, ``%s`` for psycopg)."""
    where = ""
    if states is not None:
        mark = "?" if dialect == "sqlite" else "%s"
        where = f" WHERE c.state IN ({', '.join([mark] * len(states))})"
    return (f"SELECT {_COLUMNS} FROM containers AS c JOIN images AS i ON i.id = c.image_id"
            f"{where} ORDER BY c.created_at DESC, c.id DESC")


def info_from_row(row: Sequence[Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from the values the DBAPI returned (see :mod:`fsm.stored`)."""
    (id_, name, image, state, exit_code, error, pid, created_at, started_at, finished_at,
     started_before, restart_count, manually_stopped, config, host_config, owner, node) = row
    return ContainerInfo(
        id=id_, name=name, image=image, state=state, exit_code=exit_code, error=error, pid=pid,
        created_at=read_time(created_at), started_at=read_time(started_at),
        finished_at=read_time(finished_at), has_been_started_before=bool(started_before),
        restart_count=restart_count, manually_stopped=bool(manually_stopped),
        config=read_json(config), host_config=read_json(host_config), owner=owner, node=node,
    )
