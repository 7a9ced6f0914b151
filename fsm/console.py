"""The ``berth`` console script."""

from __future__ import annotations


def main() -> None:
    from fsm.cli import main as full_cli

    full_cli()
