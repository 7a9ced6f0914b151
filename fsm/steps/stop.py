"""What ``stop`` records: the user's wish, which restart policies honour."""

from __future__ import annotations

import signal

from transitions import EventData

from fsm.container import LiveContainer
from fsm.steps.host import container_of


def stop_signal(container: LiveContainer) -> int:
    """The image's StopSignal (or the container's), SIGTERM by default."""
    return int(container.config.get("stop_signal") or signal.SIGTERM)


def record_stop_request(event: EventData) -> None:
    # ``unless-stopped`` must not bring back a container its user stopped
    container = container_of(event)
    container.set(manually_stopped=True)
    container.emit("kill", signal=signal.Signals(stop_signal(container)).name)


def end_restarts(event: EventData) -> None:
    """A stop of an exited container whose restart policy may still start it (it waits out a
    back-off): recorded like any transition, so that a restart that read the row before it
    loses its compare-and-swap."""
    container_of(event).set(manually_stopped=True)
