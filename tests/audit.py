"""Checks on the ``transitions`` audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise


def assert_legal_chain(steps: Sequence[tuple[str, str]], label: str = "") -> None:
    """Each committed transition starts where the previous one ended: ``(source, dest)`` pairs
    in commit order."""
    for (_, dest), (source, _) in pairwise(steps):
        assert source == dest, f"{label}: {steps}"
