"""``berth ps`` answered without click, SQLAlchemy or an orchestrator.

Operators run ``berth ps`` by hand, scripts run it in loops, and it reads the largest table
berth has. Importing click and the full CLI costs more than reading and printing two thousand
rows, and an orchestrator (SQLAlchemy) ten times that. So the console script
(:mod:`fsm.console`) first offers the command line to :func:`quick_ps`, which answers the plain
forms only: ``berth ps`` with ``-a``/``--all`` and ``-q``/``--quiet``, on the root and database
of the environment or the defaults. For anything else (another option, a global option,
``--help``) or a database :mod:`fsm.direct_read` cannot plainly read, it returns ``None`` and
the full CLI runs. Both print through :mod:`fsm.tables`: the same table either way
(``tests/test_quick_ps.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

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
    from fsm.direct_read import open_reader
    from fsm.errors import BerthError
    from fsm.settings import resolve

    try:
        database_url = resolve().database_url
    except BerthError:  # a root berth cannot use: the full CLI says so, the same way
        return None
    reader = open_reader(database_url)
    if reader is None:
        return None
    try:
        rows = reader.fetch("c.id" if "quiet" in flags else PS_COLUMNS,
                            list_states("all" in flags, None))
    finally:
        reader.close()
    if rows is None:
        return None
    if "quiet" in flags:
        return "\n".join(container_id[:12] for (container_id,) in rows)
    now = datetime.now(UTC)
    return render(PS_HEADERS, [
        ps_cells(container_id, image, read_json(config)["cmd"], read_time(created_at), state,
                 exit_code, read_time(started_at), read_time(finished_at), name, now)
        for (container_id, image, config, created_at, state, exit_code, started_at, finished_at,
             name) in rows])
