"""A container's row as berth reads it, on the driver's cursor: the columns, the one decoder,
and the listing statement (``ps``) that :meth:`fsm.Orchestrator.list` and the ``berth ps``
command's fast path share. The orchestrator's row loads (:mod:`fsm.sql`) select the same columns.

Why plain SQL and the DBAPI's own values rather than an ORM query: ``ps`` is the command an
operator runs most, on the largest tables. Decoding the columns here (a JSON parse, a timestamp
parse) costs about half of what SQLAlchemy's result processing does per row, and the same code
lets ``berth ps`` answer from the stdlib's ``sqlite3`` (or ``psycopg``) without importing
SQLAlchemy at all (about 0.4 s of the CLI's cold start): this module imports none of it. The
statement reads the columns as stored, so it must follow the models: ``tests/test_listing.py``
checks that what it returns equals :meth:`~fsm.Orchestrator.get` for every container, on both
databases.

The order (``created_at DESC, id DESC``) is the one the indexes of migration 0005 give by a
backward walk: no sort, however many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from fsm import states
from fsm.stored import read_json, read_time

if TYPE_CHECKING:
    from fsm.info import ContainerInfo

#: a container's columns as read: :class:`ContainerInfo`'s fields in its order (``image_name``
#: is its ``image``), then the two only :class:`~fsm.container.LiveContainer` holds
LIVE_COLUMNS = (
    "id", "name", "image_name", "state", "exit_code", "error", "pid", "created_at", "started_at",
    "finished_at", "has_been_started_before", "restart_count", "manually_stopped", "config",
    "host_config", "owner", "node", "image_id", "version",
)
LIVE_SELECT = ", ".join("i.name" if c == "image_name" else f"c.{c}" for c in LIVE_COLUMNS)
LIVE_FROM = "containers AS c JOIN images AS i ON i.id = c.image_id"
_INFO_FIELDS = len(LIVE_COLUMNS) - 2
(_CREATED, _STARTED, _FINISHED, _STARTED_BEFORE, _STOPPED, _CONFIG, _HOST_CONFIG) = (
    LIVE_COLUMNS.index(c) for c in ("created_at", "started_at", "finished_at",
                                    "has_been_started_before", "manually_stopped", "config",
                                    "host_config"))


def decode_row(row: Sequence[Any]) -> list[Any]:
    """:data:`LIVE_COLUMNS` from the values the DBAPI returned (see :mod:`fsm.stored`): aware
    UTC datetimes, booleans, decoded JSON. Positional, and written out rather than looped over:
    this runs for every row of a ``ps -a``."""
    values = list(row)
    values[_CREATED] = read_time(values[_CREATED])
    values[_STARTED] = read_time(values[_STARTED])
    values[_FINISHED] = read_time(values[_FINISHED])
    values[_STARTED_BEFORE] = bool(values[_STARTED_BEFORE])
    values[_STOPPED] = bool(values[_STOPPED])
    values[_CONFIG] = read_json(values[_CONFIG])
    values[_HOST_CONFIG] = read_json(values[_HOST_CONFIG])
    return values


def info_from_row(row: Sequence[Any]) -> ContainerInfo:
    """A :class:`ContainerInfo` from a row of :data:`LIVE_COLUMNS`."""
    # imported here: ``berth ps``'s quick path reads through this module and never builds one
    from fsm.info import ContainerInfo

    return ContainerInfo(*decode_row(row)[:_INFO_FIELDS])


def list_states(all: bool, state: str | Iterable[str] | None) -> list[str] | None:
    """Which states to list: ``state`` (one or several), else every one (``all``), else
    ``running``. ``None`` means every state."""
    if state is not None:
        wanted = [state] if isinstance(state, str) else list(state)
        unknown = [s for s in wanted if s not in states.STATES or s == states.REMOVED]
        if unknown or not wanted:
            from fsm.errors import ConfigError

            raise ConfigError("state", unknown[0] if unknown else wanted,
                              f"one or more of {', '.join(states.STATES[:-1])}")
        return wanted
    return None if all else [states.RUNNING]


def list_statement(dialect: str, states: Sequence[str] | None, columns: str = LIVE_SELECT, *,
                   inline_states: bool = False) -> str:
    """The SELECT of ``columns`` (of :data:`LIVE_FROM`) for ``states`` (``None``: every
    container), newest first, with one placeholder per state in the DBAPI's own style (``?`` for
    sqlite3, ``%s`` for psycopg); or, with ``inline_states``, the states as SQL literals, for
    a statement that takes no parameters (``psql``'s ``COPY``, :mod:`fsm.psql_read`)."""
    where = ""
    if states is not None:
        if inline_states:
            marks = [_state_literal(state) for state in states]
        else:
            marks = ["?" if dialect == "sqlite" else "%s"] * len(states)
        where = f" WHERE c.state IN ({', '.join(marks)})"
    return f"SELECT {columns} FROM {LIVE_FROM}{where} ORDER BY c.created_at DESC, c.id DESC"


def _state_literal(state: str) -> str:
    # list_states has checked the names against fsm.states already; this keeps a quote or a
    # backslash out of the SQL whatever a caller passes (and, unlike an assert, under python -O)
    if not (state.isascii() and state.isalpha() and state.islower()):
        raise ValueError(f"not a state name: {state!r}")
    return f"'{state}'"


def fetch_listing(cursor: Any, dialect: str, states: Sequence[str] | None,
                  columns: str = LIVE_SELECT) -> list[Any]:
    """Run the listing on a DBAPI ``cursor``: its rows, as the driver returns them."""
    cursor.execute(list_statement(dialect, states, columns), tuple(states or ()))
    return list(cursor.fetchall())


def list_containers(cursor: Any, dialect: str, states: Sequence[str] | None
                    ) -> list[ContainerInfo]:
    """What :meth:`fsm.Orchestrator.list` returns."""
    return [info_from_row(row) for row in fetch_listing(cursor, dialect, states)]
