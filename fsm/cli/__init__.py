"""The ``berth`` command line: a thin layer over :class:`fsm.Orchestrator` (parse, call its
public API, print).

- :func:`main` is the console script: it offers the plain forms of ``berth ps`` to
  :mod:`fsm.cli.quick_ps` (no click, no SQLAlchemy), and runs every other command line through
  the full CLI;
- :mod:`fsm.cli.app`: the ``berth`` group, its global options and the exit codes (0 ok, 1 a
  berth error in one line on stderr, 2 bad usage; ``--debug`` shows the traceback);
- :mod:`fsm.cli.context`: what every command gets, the orchestrator built on first use;
- the commands: :mod:`~fsm.cli.containers`, :mod:`~fsm.cli.journal` (history, events),
  :mod:`~fsm.cli.images`, :mod:`~fsm.cli.admin` (recover, gc, pool, db, graph),
  :mod:`~fsm.cli.demo`;
- :mod:`fsm.cli.options` (reading option values), :mod:`fsm.cli.tables` (tables and times as
  printed), :mod:`fsm.cli.progress` (a spinner for long work).

Heavy modules are imported inside the commands, so ``berth --help`` and ``berth ps`` start fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """``berth ARGV`` (default: the process's arguments); exits with the command's status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ps"]:
        from fsm.cli.quick_ps import quick_ps

        printed = quick_ps(args[1:])
        if printed is not None:
            if printed:
                sys.stdout.write(printed + "\n")
            sys.exit(0)
    from fsm.cli.app import run

    run(args)
