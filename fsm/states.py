"""The container lifecycle, declared once, as data.

    created ──start──► mounting ──mounted──► networking ──networked──► starting ──started──► running
    exited  ──start──┘    └────────── fail ──────┴───────────── fail ──────┘                 │   │
                                       ▼                                                   │   stop
                                      dead                                          exit   │   ▼
    created | exited | dead ──remove──► removing ──removed──► (row gone)      exited ◄──┴─ stopping

A trigger's ``prepare`` callback is the side effect that earns it: ``mounted`` mounts the rootfs,
and only once the mount is done is ``mounting → networking`` committed (``fsm.steps.commit``). If
the side effect raises, the state does not move and the runner fires ``fail``, whose ``prepare``
undoes every step (each undo is idempotent, so recovery may run them again). Each callback is
named here by its module in ``fsm/steps/`` and its function.

Each start is a new run (``begin_start`` numbers it): ``exit`` is fired only for the run that
ended, so an old run's late report never touches the next one. ``stop`` of an exited container
whose restart policy may still start it commits ``exited → exited`` with ``manually_stopped``.
"""

from __future__ import annotations

from typing import Any

CREATED = "created"
MOUNTING = "mounting"
NETWORKING = "networking"
STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
EXITED = "exited"
REMOVING = "removing"
DEAD = "dead"
#: not a state a row is ever in: the row is deleted by the ``removed`` transition
REMOVED = "removed"

STATES = [
    CREATED, MOUNTING, NETWORKING, STARTING, RUNNING, STOPPING, EXITED, REMOVING, DEAD, REMOVED,
]

#: states in which an orchestrator is driving a side effect; they carry an owner and a lease
IN_FLIGHT = frozenset({MOUNTING, NETWORKING, STARTING, STOPPING, REMOVING})
#: states in which the container's process may be running (or about to)
MAY_RUN = frozenset({MOUNTING, NETWORKING, STARTING, RUNNING, STOPPING})

_UNDO = [
    "fsm.steps.exit.stop_process", "fsm.steps.exit.release_ipc",
    "fsm.steps.exit.release_network", "fsm.steps.exit.put_rootfs",
]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": [CREATED, EXITED], "dest": MOUNTING,
     "prepare": "fsm.steps.start.begin_start"},
    {"trigger": "mounted", "source": MOUNTING, "dest": NETWORKING,
     "prepare": "fsm.steps.start.mount_rootfs"},
    {"trigger": "networked", "source": NETWORKING, "dest": STARTING,
     "prepare": ["fsm.steps.start.setup_network", "fsm.steps.start.prepare_process"]},
    {"trigger": "started", "source": STARTING, "dest": RUNNING,
     "prepare": "fsm.steps.start.start_process"},
    {"trigger": "stop", "source": RUNNING, "dest": STOPPING,
     "prepare": "fsm.steps.stop.record_stop_request"},
    {"trigger": "stop", "source": EXITED, "dest": EXITED,
     "prepare": "fsm.steps.stop.end_restarts"},
    {"trigger": "exit", "source": [RUNNING, STOPPING], "dest": EXITED,
     "prepare": [*_UNDO, "fsm.steps.exit.record_exit"]},
    {"trigger": "fail", "source": [MOUNTING, NETWORKING, STARTING, REMOVING],
     "dest": DEAD, "prepare": [*_UNDO, "fsm.steps.exit.record_failure"]},
    {"trigger": "remove", "source": [CREATED, EXITED, DEAD], "dest": REMOVING},
    {"trigger": "removed", "source": REMOVING, "dest": REMOVED,
     "prepare": "fsm.steps.remove.remove_layer"},
]

#: committed before every state change, after the trigger's side effect
COMMIT = "fsm.steps.commit.commit_transition"

#: the triggers ``start`` fires in order; each one's ``prepare`` is a step of the seed's
#: containerStart
START_SEQUENCE = ("start", "mounted", "networked", "started")

#: what each in-flight state is doing, for recovery's messages (a failing step names its own
#: phase: ``fsm.steps.phase``)
STEP_NAMES = {
    MOUNTING: "mounting the rootfs",
    NETWORKING: "setting up the network",
    STARTING: "starting the process",
    STOPPING: "stopping the process",
    REMOVING: "removing the container's layer",
}


def triggers_from(state: str) -> list[str]:
    """The triggers that may fire in ``state``."""
    names = []
    for transition in TRANSITIONS:
        sources = transition["source"]
        if state == sources or state in sources:
            names.append(transition["trigger"])
    return names
