"""Long work on a terminal: a spinner while a pool is created, per-layer lines while images
are pulled or loaded."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fsm.images.progress import LayerProgress


@contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr when it is a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


@contextmanager
def layer_progress(quiet: bool = False) -> Iterator[Callable[[LayerProgress], None]]:
    """A pull's or load's per-layer progress: live lines on a terminal (rich), one plain line
    per layer event otherwise, on stderr; nothing when ``quiet``."""
    if quiet:
        yield _nothing
        return
    if not sys.stderr.isatty():
        def plain(event: LayerProgress) -> None:
            print(_line(event), file=sys.stderr, flush=True)
        yield plain
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    lines: dict[tuple[str, str], str] = {}
    with Live(Text(""), console=Console(stderr=True), transient=False) as live:
        def shown(event: LayerProgress) -> None:
            lines[event.image, event.layer] = _line(event)
            live.update(Text("\n".join(lines.values())))
        yield shown


def _line(event: LayerProgress) -> str:
    size = f" ({event.size} bytes)" if event.size and event.action != "copying" else ""
    layer = f" {event.layer}" if event.layer else ""
    return f"{event.image}:{layer} {_SAID[event.action]}{size}"


_SAID = {"copying": "copying", "config": "copying config", "applying": "applying",
         "applied": "applied", "exists": "already exists"}


def _nothing(_event: LayerProgress) -> None:
    """Quiet: nothing is shown."""
