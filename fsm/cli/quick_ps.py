"""``berth ps`` answered without click, SQLAlchemy or an orchestrator, where it plainly can be.

The console script (:func:`fsm.cli.main`) offers ``berth ps ARGS`` here first. This answers the
plain forms only: ``-a``/``--all`` and ``-q``/``--quiet`` in any combination, on the root and
database of the environment or the defaults, read by :mod:`fsm.store.quick_listing` (SQLite,
standard library). For anything else (another option, a global option, ``--help``, PostgreSQL,
a database that path cannot plainly read) it returns ``None`` and the full CLI answers, through
the orchestrator. Both print through :mod:`fsm.cli.tables`: the same table either way
(``tests/test_listing.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

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
    from fsm.store import quick_listing

    try:
        database_url = resolve().database_url
    except BerthError:  # a root berth cannot use: the full CLI says so, the same way
        return None
    every = "all" in flags
    if "quiet" in flags:
        ids = quick_listing.list_ids(database_url, every)
        return None if ids is None else "\n".join(container_id[:12] for container_id in ids)
    containers = quick_listing.list_containers(database_url, every)
    if containers is None:
        return None
    from fsm.cli.tables import PS_HEADERS, ps_cells, render

    now = datetime.now(UTC)
    return render(PS_HEADERS, [
        ps_cells(c.id, c.image, c.command, c.created_at, c.state, c.exit_code, c.started_at,
                 c.finished_at, c.name, now) for c in containers])
