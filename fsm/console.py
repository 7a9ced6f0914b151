"""The ``berth`` console script: ``berth ps`` answered at once where it plainly can be
(:mod:`fsm.quick_ps`), every other command line by the full CLI (:mod:`fsm.cli`)."""

from __future__ import annotations

import sys
from typing import NoReturn


def main() -> NoReturn:
    args = sys.argv[1:]
    if args[:1] == ["ps"]:
        from fsm.quick_ps import quick_ps

        printed = quick_ps(args[1:])
        if printed is not None:
            if printed:
                sys.stdout.write(printed + "\n")
            sys.exit(0)
    from fsm.cli import main as full_cli

    full_cli()
