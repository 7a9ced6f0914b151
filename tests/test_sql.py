"""The rows berth writes on the driver's cursor (``fsm/sql.py``) are the rows SQLAlchemy would
write: the ORM reads them back as the API reported them, and the stored forms (timestamp text,
JSON, booleans) are SQLAlchemy's own, so operators' SQL and the views see one format."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from fsm import Orchestrator
from models import Container, ContainerEvent, TransitionAudit

pytestmark = pytest.mark.root

#: what SQLAlchemy's SQLite DATETIME stores: always six digits of microseconds
SQLITE_STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def test_rows_written_on_the_cursor_read_back_through_the_orm(orc: Orchestrator,
                                                              image: str) -> None:
    created = orc.create(image, ["sh", "-c", "exit 5"], name="cursor-rows", env={"K": "v w"},
                         network_mode="none", restart_policy="on-failure:2")
    orc.start(created.id)
    assert orc.wait(created.id, timeout=60) == 5
    info = orc.get(created.id)
    with Session(orc.engine) as session:
        row = session.get(Container, created.id)
        assert row is not None
        assert (row.name, row.state, row.exit_code, row.version) == (
            "cursor-rows", info.state, 5, row.version)
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
        events = session.execute(select(ContainerEvent).where(
            ContainerEvent.container_id == created.id).order_by(ContainerEvent.id)).scalars()
        first = next(iter(events))
        assert first.action == "create"
        assert first.attributes == {"image": "busybox", "name": "cursor-rows"}
        assert first.time.tzinfo is UTC


def test_stored_forms_match_what_sqlalchemy_stores(orc: Orchestrator, image: str) -> None:
    ours = orc.create(image, ["true"], network_mode="none")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # no microseconds: the tricky case
    with orc.engine.begin() as connection:
        connection.execute(insert(ContainerEvent).values(
            time=moment, container_id="f" * 64, action="probe", attributes={"a": 1}))
    with orc.engine.connect() as connection:
        def stored(sql: str) -> tuple[object, ...]:
            return tuple(connection.execute(text(sql)).one())

        theirs = stored("SELECT time, attributes FROM events WHERE action = 'probe'")
        mine = stored(f"SELECT time, attributes FROM events WHERE container_id = '{ours.id}'")
        flags = stored(f"SELECT has_been_started_before, manually_stopped FROM containers "
                       f"WHERE id = '{ours.id}'")
    if orc.engine.dialect.name == "sqlite":
        assert SQLITE_STORED_TIME.match(str(theirs[0])) and SQLITE_STORED_TIME.match(str(mine[0]))
        assert flags == (0, 0)
    assert type(mine[0]) is type(theirs[0]) and type(mine[1]) is type(theirs[1])
    # ordering by the stored text is ordering by time (one format, fixed width)
    assert str(theirs[0]) < str(mine[0])


def test_a_lease_renewal_moves_only_our_in_flight_row(orc: Orchestrator, image: str) -> None:
    from fsm.persistence import renew_lease

    def lease(container_id: str) -> datetime | None:
        with Session(orc.engine) as session:
            row = session.get(Container, container_id)
            assert row is not None
            return row.lease_expires_at

    created = orc.create(image, ["true"], network_mode="none")
    container = orc._load(created.id)
    orc._fire(container, "start")  # created -> mounting: in flight, ours, with a lease
    try:
        first = lease(created.id)
        assert first is not None and first > datetime.now(UTC)
        assert renew_lease(container) is True
        renewed = lease(created.id)
        assert renewed is not None and renewed >= first
        container.version -= 1  # as if another orchestrator had moved it since
        assert renew_lease(container) is False
        assert lease(created.id) == renewed
        container.version += 1
    finally:
        orc._fire(container, "fail", error="test over")
    assert orc.get(created.id).state == "dead"


def test_a_lost_compare_and_swap_writes_nothing(orc: Orchestrator, image: str) -> None:
    from fsm.errors import ConcurrentTransition

    created = orc.create(image, ["true"], network_mode="none")
    stale = orc._load(created.id)
    stale.set(error="must not be written")
    stale.emit("probe")
    orc.stop(created.id)  # a stop of a created container bumps nothing...
    orc._set_manually_stopped(created.id)  # ...this does: the row moves to version 2
    before = (orc.history(created.id), orc.events(container=created.id))
    with pytest.raises(ConcurrentTransition):
        orc._fire(stale, "remove")
    assert (orc.history(created.id), orc.events(container=created.id)) == before
    assert stale.state == "created" and stale.version == 1
    assert stale.changes == {"error": "must not be written"} and len(stale.events) == 1
    row = orc.get(created.id)
    assert (row.state, row.error) == ("created", "")
    orc.remove(created.id)


def test_a_row_the_database_refuses_moves_nothing(orc: Orchestrator, image: str) -> None:
    """On PostgreSQL a transition is one statement whose audit and event values are cast to
    their columns' types: a cast to ``VARCHAR(32)`` would cut a value silently, so the casts
    leave the length for the insert to check, and a refusal leaves the row where it was."""
    if orc.engine.dialect.name == "sqlite":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    created = orc.create(image, ["true"], network_mode="none")
    container = orc._load(created.id)
    container.emit("x" * 33)  # events.action is VARCHAR(32)
    before = (orc.history(created.id), orc.events(container=created.id))
    with pytest.raises(orc.sql.Error, match="too long"):
        orc._fire(container, "remove")
    assert (orc.history(created.id), orc.events(container=created.id)) == before
    assert (orc.get(created.id).state, container.state, container.version) == (
        "created", "created", 1)
    orc.remove(created.id)
    assert orc.events(container=created.id)[-1].action == "destroy"
