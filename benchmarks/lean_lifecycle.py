"""The lifecycle with berth's persistence and nothing else of the orchestrator.

What it keeps of berth: the lifecycle of ``fsm/states.py`` on one shared ``transitions``
machine, a row loaded as :class:`fsm.container.LiveContainer` (``fsm.sql``'s statement, decoded
by ``fsm.listing``), each transition committed by :func:`fsm.persistence.commit_transition`
itself (the compare-and-swap, the audit and event rows, ``fsm.sql.SQL.commit_change``), each
operation on one held connection (``fsm.sql.SQL.held``), and the prepare callbacks staging the
same column values and events as ``fsm/lifecycle.py``'s do with the null drivers (its own
``begin_start`` and ``record_exit``; the values ``start_process`` and ``remove_layer`` stage).

What it leaves out: the :class:`fsm.Orchestrator` methods around that (argument validation,
the lease keeper, ``InvalidState`` wrapping, the ``ContainerInfo`` results) and the steps' own
work (the driver calls, the bundle spec, the exit hook's command and environment, the checks
that the bundle, the network namespace and the directories are gone).

``fsm_overhead`` runs it beside berth and the floor: the ratio of this to the floor is what the
design and its persistence cost before any of those features, and so how much of the target's
1.3 is left for them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any, cast

from transitions import EventData, Machine

from benchmarks.null_drivers import IPC_MODE, NullRuntime
from fsm import Orchestrator, states
from fsm.container import LiveContainer
from fsm.lifecycle import begin_start, record_exit
from fsm.persistence import commit_transition
from models import utcnow


def _container(event: EventData) -> LiveContainer:
    return cast(LiveContainer, event.model)


def _started(event: EventData) -> None:
    """``fsm.lifecycle.start_process`` without the runtime: what it stages."""
    container = _container(event)
    container.set(pid=NullRuntime.FAKE_PID, started_at=utcnow(), has_been_started_before=True)
    container.emit("start")


def _removed(event: EventData) -> None:
    """``fsm.lifecycle.remove_layer`` without the storage driver and the directory."""
    _container(event).emit("destroy")


def _nothing(_event: EventData) -> None:
    """A step whose side effect belongs to a null driver."""


#: the steps that stage values or events; those with no side effect (``begin_start``, the exit's
#: ``record_exit``) are berth's own
_STAGING: dict[str, Callable[[EventData], None]] = {
    "start": begin_start, "started": _started, "exit": record_exit, "removed": _removed,
}


def lean_machine() -> Machine:
    """``fsm/states.py``'s machine with the staging callbacks, committing as berth does."""
    transitions: list[dict[str, Any]] = []
    for spec in states.TRANSITIONS:
        transition = dict(spec)
        if "prepare" in transition:
            transition["prepare"] = _STAGING.get(transition["trigger"], _nothing)
        transitions.append(transition)
    return Machine(model=None, states=states.STATES, transitions=transitions,
                   initial=states.CREATED, auto_transitions=False, send_event=True,
                   before_state_change=commit_transition)


def lean_lifecycle(orc: Orchestrator, image: str) -> Callable[[], None]:
    """create, start, the exit, remove: berth's statements, committed by berth's code, each
    operation on one held connection (:meth:`fsm.sql.SQL.held`) as the orchestrator's are."""
    sql = orc.sql
    triggers = lean_machine().events
    node = orc.settings.node

    def load(container_id: str) -> LiveContainer:
        return LiveContainer.from_stored(orc, sql.fetch_one(sql.select_live,
                                                            (container_id, container_id)))

    def create() -> str:
        image_id, image_name, *_rest = sql.fetch_one(sql.select_image, (image, image))
        container_id = secrets.token_hex(32)
        name = f"berth_{container_id[:12]}"
        now = utcnow()
        row = {
            "id": container_id, "name": name, "image_id": image_id, "state": states.CREATED,
            "version": 1, "node": node, "exit_code": 0, "error": "", "created_at": now,
            "has_been_started_before": False, "restart_count": 0, "manually_stopped": False,
            "config": {"cmd": ["/bin/true"], "env": {}, "working_dir": "/",
                       "exposed_ports": []},
            "host_config": {"network_mode": "", "ipc_mode": IPC_MODE, "tmpfs": {}, "links": [],
                            "restart_policy": {"name": "no", "maximum_retry_count": 0},
                            "mounts": [], "shm_size": None, "auto_remove": False},
        }
        sql.commit_change((sql.insert_container, sql.container_row(row)), None, now,
                          container_id, [("create", {"image": image_name, "name": name})])
        return container_id

    def lifecycle() -> None:
        with sql.held():
            container_id = create()
        with sql.held():
            container = load(container_id)
            for trigger in states.START_SEQUENCE:
                triggers[trigger].trigger(container)
        with sql.held():
            triggers["exit"].trigger(load(container_id), exit_code=0)
        with sql.held():
            container = load(container_id)
            triggers["remove"].trigger(container)
            triggers["removed"].trigger(container)

    return lifecycle
