"""Leases on in-flight rows: renewed while a step runs; recovery takes over only a row whose
owner died or whose lease expired, and only on its own node."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from fsm import Orchestrator, states
from models import Container, utcnow


def _in_flight(orc: Orchestrator, image: str) -> str:
    """A container left in ``mounting`` by this process (it fired ``start`` and went no further)."""
    created = orc.create(image, ["true"], network_mode="none")
    orc.runner.fire(orc.db.resolve(created.id), "start")
    assert orc.get(created.id).state == states.MOUNTING
    return created.id


def _all_ids(report: dict[str, list[str]]) -> set[str]:
    return {container_id for ids in report.values() for container_id in ids}


def _lease(orc: Orchestrator, container_id: str) -> object:
    with orc.db.engine.connect() as connection:
        return connection.execute(select(Container.lease_expires_at)
                                  .where(Container.id == container_id)).scalar_one()


def _set(orc: Orchestrator, container_id: str, **values: object) -> None:
    with orc.db.engine.begin() as connection:
        connection.execute(update(Container).where(Container.id == container_id).values(values))


def test_the_lease_is_renewed_while_a_step_runs(database_url: str, root: object,
                                                busybox_tar: object) -> None:
    orc = Orchestrator(database_url=database_url, root=root, storage="vfs", lease_seconds=0.6)
    orc.import_image("busybox", busybox_tar)  # type: ignore[arg-type]
    container_id = _in_flight(orc, "busybox")
    first = _lease(orc, container_id)
    with orc.runner.leases.keep(orc.db.resolve(container_id)):
        deadline = time.monotonic() + 10
        while _lease(orc, container_id) == first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
    assert _lease(orc, container_id) > first  # type: ignore[operator]
    orc.close()


def test_recovery_leaves_a_live_owners_row_alone(orc: Orchestrator, image: str) -> None:
    container_id = _in_flight(orc, image)
    report = orc.recover()
    assert container_id not in _all_ids(report)
    assert orc.get(container_id).state == states.MOUNTING


def test_recovery_takes_over_an_expired_lease(orc: Orchestrator, image: str) -> None:
    container_id = _in_flight(orc, image)
    # an owner that recovery cannot check (another host's process) whose lease ran out
    _set(orc, container_id, owner="elsewhere:1:1", lease_expires_at=utcnow() - timedelta(1))
    assert orc.recover()["failed"] == [container_id]
    info = orc.get(container_id)
    assert (info.state, info.error, info.owner) == (states.DEAD, "interrupted", None)


def test_recovery_takes_over_at_once_from_a_dead_owner_on_this_node(
    orc: Orchestrator, image: str
) -> None:
    container_id = _in_flight(orc, image)
    # pid 1 with a start time it never had: that owner is gone, whatever the lease says
    _set(orc, container_id, owner=f"{orc.settings.node}:1:999999999")
    assert orc.recover()["failed"] == [container_id]


def test_recovery_leaves_other_nodes_rows_alone(orc: Orchestrator, image: str) -> None:
    container_id = _in_flight(orc, image)
    _set(orc, container_id, node="another-host", owner="another-host:1:1",
         lease_expires_at=utcnow() - timedelta(1))
    assert container_id not in _all_ids(orc.recover())
    assert orc.get(container_id).state == states.MOUNTING
    _set(orc, container_id, node=orc.settings.node)  # so teardown can reconcile and remove it
    orc.recover()


@pytest.fixture(autouse=True)
def _no_leftover_in_flight(orc: Orchestrator) -> object:
    yield None
    orc.recover()
    _expire_all(orc)


def _expire_all(orc: Orchestrator) -> None:
    with orc.db.engine.begin() as connection:
        connection.execute(update(Container).where(Container.state.in_(states.IN_FLIGHT))
                           .values(lease_expires_at=utcnow() - timedelta(1), owner=None))
    orc.recover()
