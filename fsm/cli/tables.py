"""How the CLI prints tables, times and sizes, and what a row of ``berth ps`` shows.

Standard library only: ``berth ps`` prints through this module from both of its paths, the
orchestrator's :class:`~fsm.ContainerInfo` and the SQLite fast path's rows
(:mod:`fsm.cli.quick_ps`), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

PS_HEADERS = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart: one string, to be written at
    once (a write per line costs more than the query on a large ``ps -a``)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return "\n".join("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip()
                     for line in [headers, *rows])


def ps_cells(container_id: str, image: str, command: Sequence[str], created_at: datetime,
             state: str, exit_code: int | None, started_at: datetime | None,
             finished_at: datetime | None, name: str, now: datetime) -> list[str]:
    """One line of ``berth ps``, as Docker prints it; ``now`` is taken once per listing."""
    if state == "running":
        status = f"Up {ago(started_at, now).removesuffix(' ago')}"
    elif state in ("exited", "dead"):
        status = f"{state.capitalize()} ({exit_code}) {ago(finished_at, now)}".rstrip()
    else:
        status = state.capitalize()
    return [container_id[:12], image, short(" ".join(command), 30), ago(created_at, now), status,
            name]


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = (now - moment).total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} seconds ago"


def size(value: int) -> str:
    """Bytes in decimal units, three significant digits: ``1.23 MB``."""
    scaled = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if scaled < 1000:
            return f"{scaled:.3g} {unit}"
        scaled /= 1000
    return f"{scaled:.3g} TB"
