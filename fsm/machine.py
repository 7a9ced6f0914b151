"""One shared ``transitions`` machine drives every container.

A :class:`transitions.Machine` per row costs about six times as much as firing the shared
machine's events on a plain object, and ``add_model`` keeps a strong reference and does an O(n)
membership check. So rows are never added to the machine: an event is fired on a
:class:`~fsm.container.LiveContainer` directly, and the machine reads and writes its ``state``.

The callbacks are the dotted names of ``fsm/states.py``, imported once here (``transitions``
would look each one up again on every event).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, cast

from transitions import EventData, Machine, MachineError

from fsm import states
from fsm.container import LiveContainer
from fsm.errors import InvalidState
from fsm.steps.host import Host
from fsm.steps.phase import phase_of


def step(path: str) -> Callable[..., Any]:
    """The function a dotted name of ``fsm/states.py`` names."""
    module, _, name = path.rpartition(".")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _in_order(steps: list[Callable[..., Any]]) -> Callable[..., Any]:
    """One callback running ``steps`` in order, as ``transitions`` runs a list of them (the
    first to raise stops the rest), noting on the container which phase is under way."""

    def run_in_order(event: EventData) -> None:
        container = cast(LiveContainer, event.model)
        for each in steps:
            container.phase = phase_of(each)
            each(event)

    return run_in_order


def _resolved(transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for transition in transitions:
        transition = dict(transition)
        prepare = transition.get("prepare")
        if prepare is not None:
            names = [prepare] if isinstance(prepare, str) else prepare
            transition["prepare"] = _in_order([step(name) for name in names])
        result.append(transition)
    return result


MACHINE = Machine(
    model=None,
    states=states.STATES,
    transitions=_resolved(states.TRANSITIONS),
    initial=states.CREATED,
    auto_transitions=False,
    send_event=True,
    # the compare-and-swap: committed after the trigger's side effect, before the state moves
    before_state_change=step(states.COMMIT),
)


def fire(container: LiveContainer, trigger: str, host: Host, **kwargs: Any) -> None:
    """Fire ``trigger`` on ``container``; its side effect runs, then the change is committed.

    Raises :class:`InvalidState` when the trigger may not fire from the container's state, and
    whatever the side effect raised (the state has then not moved).
    """
    event = MACHINE.events.get(trigger)
    if event is None:
        raise ValueError(f"unknown trigger {trigger!r}")
    try:
        event.trigger(container, host=host, **kwargs)
    except MachineError as error:
        raise InvalidState(container.id, container.state, trigger, name=container.name) from error


def may_fire(state: str, trigger: str) -> bool:
    return trigger in MACHINE.get_triggers(state)
