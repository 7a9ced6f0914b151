"""``berth ps`` answered without click, SQLAlchemy or an orchestrator.

Operators run ``berth ps`` by hand, scripts run it in loops, and it reads the largest table
berth has. Importing click and the full CLI costs more than reading and printing two thousand
rows, and an orchestrator (SQLAlchemy) ten times that. So the console script
(:mod:`fsm.console`) first offers the command line to :func:`quick_ps`, which answers the plain
forms only: ``berth ps`` with ``-a``/``--all`` and ``-q``/``--quiet``, on the root and database
of the environment or the defaults. For anything else (another option, a global option,
``--help``) or a database it cannot plainly read, it returns ``None`` and the full CLI runs.
It reads through ``psql`` on PostgreSQL (:mod:`fsm.psql_read`: importing psycopg would cost more
than the rest together), else, or where that fails, through the driver (:mod:`fsm.direct_read`).
Both paths print through :mod:`fsm.tables`: the same table either way (``tests/test_listing.py``
compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fsm.listing import list_states
from fsm.stored import read_json, read_time
from fsm.tables import PS_HEADERS, ps_cells, render

#: the columns of :func:`fsm.tables.ps_cells`, in its order (``config`` holds the command)
PS_COLUMNS = ("c.id, i.name, c.config, c.created_at, c.state, c.exit_code, c.started_at, "
              "c.finished_at, c.name")
_FLAGS = {"-a": {"all"}, "--all": {"all"}, "-q": {"quiet"}, "--quiet": {"quiet"},
          "-aq": {"all", "quiet"}, "-qa": {"all", "quiet"}}


def quick_ps(args: Sequence[str]) -> str | None:
    """What ``berth ps ARGS`` prints, without its last newline (``""``: nothing at all); or
    ``None`` where the full CLI must answer."""
    flags: set[str] = set()
    for arg in args:
        if arg not in _FLAGS:
            return None
        flags |= _FLAGS[arg]
    from fsm.errors import BerthError
    from fsm.settings import resolve

    try:
        database_url = resolve().database_url
    except BerthError:  # a root berth cannot use: the full CLI says so, the same way
        return None
    rows = _fetch(database_url, "c.id" if "quiet" in flags else PS_COLUMNS,
                  list_states("all" in flags, None))
    if rows is None:
        return None
    if "quiet" in flags:
        return "\n".join(container_id[:12] for (container_id,) in rows)
    now = datetime.now(UTC)
    # the driver's values or psql's text alike (fsm.psql_read): exit_code as a number, and the
    # two nullable columns' NULL, which CSV gives as "", as None
    return render(PS_HEADERS, [
        ps_cells(container_id, image, read_json(config)["cmd"], read_time(created_at), state,
                 int(exit_code), read_time(started_at or None), read_time(finished_at or None),
                 name, now)
        for (container_id, image, config, created_at, state, exit_code, started_at, finished_at,
             name) in rows])


def _fetch(database_url: str, columns: str, states: Sequence[str] | None
           ) -> Sequence[Sequence[Any]] | None:
    """The listing's rows of ``columns``: through ``psql`` on PostgreSQL, else (or if that
    fails) through the driver; ``None`` where neither can plainly read the database."""
    from fsm.direct_read import libpq_uri, read_directly
    from fsm.listing import fetch_listing

    conninfo = libpq_uri(database_url)
    if conninfo is not None:
        from fsm.psql_read import fetch_listing_through_psql

        rows = fetch_listing_through_psql(conninfo, columns, states)
        if rows is not None:
            return rows
    return read_directly(database_url,
                         lambda cursor, dialect: fetch_listing(cursor, dialect, states, columns))
