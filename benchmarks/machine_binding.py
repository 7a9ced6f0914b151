"""How to bind rows to ``transitions``: one shared machine vs a machine per row vs add_model.

No database: the lifecycle of ``fsm/states.py`` (start, mounted, networked, started | exit |
remove, removed) with callbacks that do nothing, fired the three ways one could:

- ``shared``: one machine, events fired on a plain object (``MACHINE.events[name].trigger(obj)``),
  no ``add_model``: what ``fsm/machine.py`` does;
- ``per-row``: a ``Machine(model=obj, ...)`` built for each loaded row (three per lifecycle), and
  ``per-row, kept``: one built per container and kept for its whole lifecycle;
- ``add_model``: one machine, ``add_model(obj, initial=obj.state)`` / ``remove_model(obj)`` around
  each operation (also with 1 000 other models resident, since ``add_model`` checks membership in a
  list).

A lifecycle is three operations, each on a fresh object read from "its row", as the
runner does: ``start`` (4 triggers), the process's ``exit`` (1), ``remove`` (2).

Each variant is also run with the callbacks named by dotted strings (as ``fsm/states.py``
declares them: ``transitions`` resolves a string on every call, through a failed ``getattr`` on
the model and ``__import__``) and with the callables themselves.

Run: ``python -m benchmarks.machine_binding [--quick]``
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transitions import Machine

from benchmarks._common import Samples, alternate, banner, parser, print_table, spread
from fsm import states

OPERATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("created", ("start", "mounted", "networked", "started")),
    ("running", ("exit",)),
    ("exited", ("remove", "removed")),
)
THIS_MODULE = __name__ if __name__ != "__main__" else "benchmarks.machine_binding"


def nothing(_event: Any) -> None:
    """Every callback: the side effect and the commit cost nothing here."""


class Row:
    """A plain object with a ``state`` attribute, like ``fsm.container.LiveContainer``."""

    def __init__(self, state: str) -> None:
        self.state = state


def _transitions(by_name: bool) -> tuple[list[dict[str, Any]], Any]:
    """``fsm/states.py``'s transitions with every callback replaced by :func:`nothing`."""
    callback: Any = f"{THIS_MODULE}.nothing" if by_name else nothing
    result = []
    for spec in states.TRANSITIONS:
        copy = dict(spec)
        if "prepare" in copy:
            prepare = copy["prepare"]
            count = len(prepare) if isinstance(prepare, list) else 1
            copy["prepare"] = [callback] * count
        result.append(copy)
    return result, callback


def _machine(by_name: bool, model: Any = None, initial: str = states.CREATED) -> Machine:
    transitions, callback = _transitions(by_name)
    return Machine(model=model, states=states.STATES, transitions=transitions, initial=initial,
                   auto_transitions=False, send_event=True, before_state_change=callback)


def shared(by_name: bool) -> Callable[[], None]:
    machine = _machine(by_name)
    events = machine.events

    def lifecycle() -> None:
        for initial, triggers in OPERATIONS:
            row = Row(initial)
            for trigger in triggers:
                events[trigger].trigger(row)
            assert row.state == ("removed" if trigger == "removed" else row.state)

    return lifecycle


def per_row(by_name: bool) -> Callable[[], None]:
    def lifecycle() -> None:
        for initial, triggers in OPERATIONS:
            row = Row(initial)
            _machine(by_name, model=row, initial=initial)
            for trigger in triggers:
                getattr(row, trigger)()

    return lifecycle


def per_lifecycle(by_name: bool) -> Callable[[], None]:
    """One machine per row, built once and kept for the row's whole lifecycle."""

    def lifecycle() -> None:
        row = Row(states.CREATED)
        _machine(by_name, model=row)
        for _initial, triggers in OPERATIONS:
            for trigger in triggers:
                getattr(row, trigger)()

    return lifecycle


def add_model(by_name: bool, resident: int) -> Callable[[], None]:
    machine = _machine(by_name)
    for _ in range(resident):
        machine.add_model(Row(states.CREATED), initial=states.CREATED)

    def lifecycle() -> None:
        for initial, triggers in OPERATIONS:
            row = Row(initial)
            machine.add_model(row, initial=initial)
            for trigger in triggers:
                getattr(row, trigger)()
            machine.remove_model(row)

    return lifecycle


def timed(lifecycle: Callable[[], None], count: int) -> Callable[[], float]:
    """µs per lifecycle over ``count`` lifecycles."""

    def run() -> float:
        start = time.perf_counter_ns()
        for _ in range(count):
            lifecycle()
        return (time.perf_counter_ns() - start) / count / 1000

    return run


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    banner("machine_binding", args.quick)
    count, rounds = (20, 3) if args.quick else (400, 11)
    few = max(1, count // 4)  # for the slow variants, so that each run takes about as long
    variants: list[tuple[str, Callable[[], float]]] = []
    for by_name in (True, False):
        tag = "names" if by_name else "callables"
        variants += [
            (f"shared, {tag}", timed(shared(by_name), count)),
            (f"per-row, {tag}", timed(per_row(by_name), few)),
            (f"per-row kept, {tag}", timed(per_lifecycle(by_name), few)),
            (f"add_model, {tag}", timed(add_model(by_name, 0), few)),
            (f"add_model +1000 resident, {tag}", timed(add_model(by_name, 1000), few)),
        ]
    for _, run in variants:  # warm-up: imports, caches
        run()
    samples = alternate(rounds, variants, Samples("µs/lifecycle"))
    print(f"\n{count} lifecycles per run (shared) or {few} (the others), {rounds} rounds, "
          "order rotated each round; 7 triggers per lifecycle in 3 operations")
    rows = []
    for by_name in (True, False):
        tag = "names" if by_name else "callables"
        base = samples.median(f"shared, {tag}")
        for name, _ in variants:
            if name.endswith(tag):
                value = samples.median(name)
                rows.append([name, value, value / 7, spread(samples.values[name]), value / base])
    print_table("µs per lifecycle (median of rounds); ratio to the shared machine, same callbacks",
                ["variant", "µs/lifecycle", "µs/trigger", "min..max", "x shared"], rows)
    names = samples.median("shared, names")
    callables = samples.median("shared, callables")
    print(f"\nshared machine: names / callables = {names / callables:.2f} "
          f"({names - callables:.1f} µs per lifecycle spent resolving dotted names)")
    for variant in ("per-row", "per-row kept"):
        for tag in ("names", "callables"):
            ratio = samples.median(f"shared, {tag}") / samples.median(f"{variant}, {tag}")
            print(f"shared / {variant} ({tag}) = {ratio:.2f}  (the issue says about 0.5)")


if __name__ == "__main__":
    main()
