"""Each step names the phase it does, so that a failure says which one failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def phase(name: str) -> Callable[[_F], _F]:
    """``@phase("mounting the rootfs")``: what the error edge reports when the step raises."""

    def mark(step: _F) -> _F:
        step.phase = name  # type: ignore[attr-defined]
        return step

    return mark


def phase_of(step: Callable[..., Any]) -> str:
    return str(getattr(step, "phase", step.__name__.replace("_", " ")))
