"""What ``stop`` records: the user's wish, which restart policies honour."""

from __future__ import annotations

from transitions import EventData

from fsm.steps.host import container_of


def record_stop_request(event: EventData) -> None:
    # ``unless-stopped`` must not bring back a container its user stopped
    container = container_of(event)
    container.set(manually_stopped=True)
    container.emit("kill", signal="SIGTERM")


def end_restarts(event: EventData) -> None:
    """A stop of an exited container whose restart policy may still start it (it waits out a
    back-off): recorded like any transition, so that a restart that read the row before it
    loses its compare-and-swap."""
    container_of(event).set(manually_stopped=True)
