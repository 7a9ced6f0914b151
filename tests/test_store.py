"""The store: what berth writes is what the models say (the ORM reads it back as the API
reported it), a transition moves a row only from the version it read, and nothing else of the
lifecycle writes ``containers`` but the compare-and-swap."""

from __future__ import annotations

import ast
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fsm import ConcurrentTransition, Orchestrator, states
from fsm.container import LiveContainer
from fsm.runner import Runner
from fsm.store.containers import LIVE_COLUMNS
from models import Container, ContainerEvent, TransitionAudit
from tests.audit import assert_legal_chain

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[1]


def test_rows_read_back_through_the_orm_as_the_api_reported_them(orc: Orchestrator,
                                                                 image: str) -> None:
    created = orc.create(image, ["sh", "-c", "exit 5"], name="stored-rows", env={"K": "v w"},
                         network_mode="none", restart_policy="on-failure:2")
    orc.start(created.id)
    assert orc.wait(created.id, timeout=60) == 5
    info = orc.get(created.id)
    with Session(orc.db.engine) as session:
        row = session.get(Container, created.id)
        assert row is not None
        assert (row.name, row.state, row.exit_code, row.run) == ("stored-rows", info.state, 5,
                                                                  info.run)
        assert row.config == info.config and row.config["env"] == {"K": "v w"}
        assert row.host_config == info.host_config
        assert row.created_at == info.created_at == created.created_at
        assert row.started_at == info.started_at and row.finished_at == info.finished_at
        assert row.has_been_started_before is True and row.manually_stopped is False
        assert row.owner is None and row.lease_expires_at is None
        audit = session.execute(select(TransitionAudit).where(
            TransitionAudit.container_id == created.id).order_by(TransitionAudit.id)).scalars()
        assert [(a.trigger, a.source, a.dest) for a in audit][:2] == [
            ("start", "created", "mounting"), ("mounted", "mounting", "networking")]
        first = session.execute(select(ContainerEvent).where(
            ContainerEvent.container_id == created.id).order_by(ContainerEvent.id)
        ).scalars().first()
        assert first is not None and first.action == "create"
        assert first.attributes == {"image": "busybox", "name": "stored-rows"}
        assert first.time.tzinfo is UTC


def test_a_live_container_carries_every_column_of_the_model_but_the_lease() -> None:
    columns = {c.name for c in Container.__table__.columns} - {"lease_expires_at"}
    assert {c.name for c in LIVE_COLUMNS} == columns
    fields = set(LiveContainer.__dataclass_fields__)
    assert columns <= fields


def test_a_lease_renewal_moves_only_our_in_flight_row(orc: Orchestrator, image: str) -> None:
    def lease(container_id: str) -> datetime | None:
        with Session(orc.db.engine) as session:
            row = session.get(Container, container_id)
            assert row is not None
            return row.lease_expires_at

    created = orc.create(image, ["true"], network_mode="none")
    container = orc.db.resolve(created.id)
    orc.runner.fire(container, "start")  # created -> mounting: in flight, ours, with a lease
    keeper = orc.runner.leases
    try:
        first = lease(created.id)
        assert first is not None and first > datetime.now(UTC)
        assert keeper.renew(container) is True
        renewed = lease(created.id)
        assert renewed is not None and renewed >= first
        container.version -= 1  # as if another orchestrator had moved it since
        assert keeper.renew(container) is False
        assert lease(created.id) == renewed
        container.version += 1
    finally:
        orc.runner.fail(container, "test over")
    assert orc.get(created.id).state == "dead"


def test_a_lost_compare_and_swap_writes_nothing(orc: Orchestrator, image: str) -> None:
    created = orc.create(image, ["true"], network_mode="none")
    stale = orc.db.resolve(created.id)
    stale.set(error="must not be written")
    stale.emit("probe")
    moved = orc.db.resolve(created.id)
    orc.runner.fire(moved, "remove")  # someone else moved it first: created -> removing
    before = (orc.history(created.id), orc.events(container=created.id))
    with pytest.raises(ConcurrentTransition):
        orc.runner.fire(stale, "remove")
    assert (orc.history(created.id), orc.events(container=created.id)) == before
    assert stale.state == "created" and stale.version == 1
    assert stale.changes == {"error": "must not be written"} and len(stale.events) == 1
    orc.runner.fire(moved, "removed")
    assert orc.list(all=True) == []


def test_a_row_the_database_refuses_moves_nothing(orc: Orchestrator, image: str) -> None:
    if orc.db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    created = orc.create(image, ["true"], network_mode="none")
    container = orc.db.resolve(created.id)
    container.emit("x" * 33)  # events.action is VARCHAR(32)
    before = (orc.history(created.id), orc.events(container=created.id))
    with pytest.raises(Exception, match="too long"):
        orc.runner.fire(container, "remove")
    assert (orc.history(created.id), orc.events(container=created.id)) == before
    assert (orc.get(created.id).state, container.state, container.version) == (
        "created", "created", 1)
    container.events.clear()
    orc.remove(created.id)
    assert orc.events(container=created.id)[-1].action == "destroy"


class RestartBetweenLoadAndWrite:
    """Fault injection: the first ``stop`` this runner fires is held until a restart policy's
    ``start`` of the same container has committed (in another thread, as the exit hook's process
    would), and that restart is held before its next step until the stop has tried its write:
    the stop writes a row that moved after it was read, while the restart is in flight."""

    def __init__(self, runner: Runner, restarter: Runner) -> None:
        self.fire, self.restarter_fire = runner.fire, restarter.fire
        self.restarter = restarter
        self.restart_committed = threading.Event()
        self.stop_tried = threading.Event()
        self.outcome: list[object] = []
        runner.fire = self.stop_during_restart  # type: ignore[method-assign]
        restarter.fire = self.restart_held  # type: ignore[method-assign]

    def restart_held(self, container: LiveContainer, trigger: str, **kwargs: object) -> None:
        if trigger == "mounted":
            self.restart_committed.set()
            assert self.stop_tried.wait(timeout=60)
        self.restarter_fire(container, trigger, **kwargs)

    def restart(self, container_id: str) -> None:
        try:
            self.outcome.append(self.restarter.restart(self.restarter.db.resolve(container_id)))
        except Exception as error:
            self.outcome.append(error)
            self.restart_committed.set()

    def stop_during_restart(self, container: LiveContainer, trigger: str,
                            **kwargs: object) -> None:
        if trigger != "stop" or self.stop_tried.is_set():
            self.fire(container, trigger, **kwargs)
            return
        restarting = threading.Thread(target=self.restart, args=(container.id,))
        restarting.start()
        assert self.restart_committed.wait(timeout=60)
        try:
            self.fire(container, trigger, **kwargs)
        finally:
            self.stop_tried.set()


def test_a_stop_that_races_a_restart_leaves_nothing_in_flight(
        orc: Orchestrator, image: str, database_url: str, root: Path) -> None:
    created = orc.create(image, ["sleep", "600"], network_mode="none", restart_policy="always")
    orc.start(created.id)
    assert orc.stop(created.id, timeout=0).state == states.EXITED
    # the test's setup: as if the exit had come by itself, so that the restart policy may
    # start it again (as the exit hook would, after its back-off)
    with orc.db.engine.begin() as connection:
        connection.execute(Container.__table__.update()
                           .where(Container.id == created.id).values(manually_stopped=False))
    restarter = Orchestrator(database_url=database_url, root=root, storage=orc.storage.name,
                             recover=False)
    try:
        fault = RestartBetweenLoadAndWrite(orc.runner, restarter.runner)
        info = orc.stop(created.id, timeout=0)
    finally:
        restarter.close()
    assert fault.stop_tried.is_set() and len(fault.outcome) == 1
    assert not isinstance(fault.outcome[0], Exception), fault.outcome
    assert (info.state, info.manually_stopped) == (states.EXITED, True)
    final = orc.get(created.id)
    assert final.state not in states.IN_FLIGHT and final.state == states.EXITED
    history = orc.history(created.id)
    assert_legal_chain([(t.source, t.dest) for t in history], created.id)
    # the restart ran (a second run) and was then stopped: the stop won in the end
    assert [t.trigger for t in history].count("start") == 2 and final.run == 2


def test_only_the_store_writes_sql() -> None:
    """No module outside fsm/store imports SQLAlchemy's statement builders or the models'
    tables to write them (the CLI's schema commands call fsm.store.schema)."""
    offenders = []
    for path in (REPO / "fsm").rglob("*.py"):
        if "store" in path.relative_to(REPO / "fsm").parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    node.module.startswith("sqlalchemy") and any(
                        a.name in {"select", "insert", "update", "delete", "text"}
                        for a in node.names)):
                offenders.append(f"{path.relative_to(REPO)}: {node.module}")
    assert offenders == []
