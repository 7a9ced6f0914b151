"""The operator views (migration 0004_views) say what the API says, and every query in
docs/database.md runs on SQLite and PostgreSQL.

One database per dialect is populated through the real API: containers created, run to exit,
failed to start, restarted by their policy, removed; and a devicemapper pool's records written
through the SQL metadata store the DeviceSet uses (this host has no dm-thin, so no kernel device
stands behind them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text, update

from drivers.storage.devicemapper.metadata import DeviceState, PoolRecord
from fsm import Orchestrator, StartFailed, states
from fsm.store.thin import SQLDeviceMetadataStore
from models import Container, TransitionAudit

pytestmark = pytest.mark.root

DOCS = Path(__file__).resolve().parents[1] / "docs" / "database.md"
POOL = "berth-0123abcd-pool"
UNOWNED = "f" * 64
DEADLINE_SECONDS = 60.0


@dataclass
class World:
    orc: Orchestrator
    dialect: str
    ids: dict[str, str] = field(default_factory=dict)
    populated_on: datetime = field(default_factory=lambda: datetime.now(UTC))

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.orc.db.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(text(sql), params)]


def _wait_for(what: str, condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _populate(orc: Orchestrator, tar: Path) -> dict[str, str]:
    orc.import_image("busybox", tar)
    ids: dict[str, str] = {}

    def make(name: str, command: list[str], **options: Any) -> str:
        ids[name] = orc.create("busybox", command, name=name, network_mode="none", **options).id
        return ids[name]

    make("idle", ["true"])
    orc.start(make("web", ["sleep", "600"]))
    for name, command in (("ok", ["sh", "-c", "echo ok"]), ("bad", ["sh", "-c", "exit 3"]),
                          ("gone", ["true"])):
        orc.start(make(name, command))
        orc.wait(ids[name], timeout=DEADLINE_SECONDS)
    orc.remove(ids["gone"])
    with pytest.raises(StartFailed):
        orc.start(make("broken", ["/bin/no-such-program"]))
    # the exit hook restarts it twice (back-off 0.1 s, 0.2 s), then it stays exited
    orc.start(make("flaky", ["sh", "-c", "exit 1"], restart_policy="on-failure:2"))

    def flaky_done() -> bool:
        info = orc.get(ids["flaky"])
        return info.state == states.EXITED and info.restart_count == 2
    _wait_for("flaky's restarts", flaky_done)

    # the records a devicemapper DeviceSet keeps: base, the image's layer, idle's layer, and a
    # create that never committed (a crash between the pool message and its commit)
    store = SQLDeviceMetadataStore(orc.db.engine)
    store.add_pool(PoolRecord(name=POOL, pool_device=f"/dev/mapper/{POOL}",
                              data_file="/var/lib/berth/devicemapper/data",
                              metadata_file="/var/lib/berth/devicemapper/metadata",
                              block_size_sectors=128, base_size=10 << 30))
    image_id = orc.images()[0].top_layer
    for layer, parent, final in (("base", None, DeviceState.CREATED),
                                 (image_id, "base", DeviceState.CREATED),
                                 (ids["idle"], image_id, DeviceState.ACTIVE),
                                 (UNOWNED, image_id, None)):
        store.begin_create(POOL, layer, parent, 10 << 30)
        if final is not None:
            store.commit_transaction(POOL, DeviceState.CREATED)
            if final is not DeviceState.CREATED:
                store.set_state(POOL, layer, final, expected=DeviceState.CREATED,
                                mount_count=1, mount_path=f"/var/lib/berth/mnt/{layer}")
    return ids


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          busybox_tar: Path) -> Iterator[World]:
    base = tmp_path_factory.mktemp(f"views-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'berth.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"berth_views_{base.name}")
    orc = Orchestrator(database_url=url, root=base / "root", storage="vfs")
    try:
        world = World(orc, orc.db.engine.dialect.name)
        world.ids = _populate(orc, busybox_tar)
        yield world
    finally:
        for container in orc.list(all=True):
            orc.remove(container.id, force=True)
        orc.close()


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp read from a view: SQLite gives text, PostgreSQL a naive datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def _now_window(world: World, sql: str) -> tuple[datetime, list[dict[str, Any]], datetime]:
    before = datetime.now(UTC)
    rows = world.query(sql)
    return before, rows, datetime.now(UTC)


# -- container_status -------------------------------------------------------------------------


def test_container_status_has_one_row_per_container_as_the_api_lists_them(world: World) -> None:
    orc = world.orc
    before, rows, after = _now_window(world, "SELECT * FROM container_status")
    listed = {c.id: c for c in orc.list(all=True)}
    with orc.db.engine.connect() as connection:
        leases = dict(connection.execute(select(Container.id, Container.lease_expires_at)).all())
    assert sorted(r["id"] for r in rows) == sorted(listed)
    assert set(listed) == {world.ids[n] for n in ("idle", "web", "ok", "bad", "broken", "flaky")}
    for row in rows:
        info = listed[row["id"]]
        assert row["short_id"] == info.short_id
        assert (row["name"], row["image"], row["state"], row["exit_code"], row["error"]) == (
            info.name, info.image, info.state, info.exit_code, info.error)
        assert (row["pid"], row["node"], row["owner"], row["restart_count"]) == (
            info.pid, info.node, info.owner, info.restart_count)
        assert bool(row["has_been_started_before"]) is info.has_been_started_before
        assert bool(row["manually_stopped"]) is info.manually_stopped
        for column in ("created_at", "started_at", "finished_at"):
            assert _utc(row[column]) == getattr(info, column), column
        assert _utc(row["lease_expires_at"]) == leases[row["id"]]
        assert row["in_flight"] == int(info.state in states.IN_FLIGHT) == 0
        assert (row["lease_expired"], row["lease_seconds_left"]) == (0, None)
        history = orc.history(row["id"])
        since = history[-1].finished_at if history else info.created_at
        assert _utc(row["state_since"]) == since
        # SQLite's clock has milliseconds
        slack = 0.002
        assert (before - since).total_seconds() - slack <= row["seconds_in_state"]
        assert row["seconds_in_state"] <= (after - since).total_seconds() + slack
    by_name = {r["name"]: r for r in rows}
    assert (by_name["broken"]["state"], by_name["broken"]["exit_code"]) == ("dead", 128)
    assert "no-such-program" in by_name["broken"]["error"]
    assert (by_name["flaky"]["state"], by_name["flaky"]["restart_count"]) == ("exited", 2)


def test_in_flight_rows_their_owners_and_leases(world: World) -> None:
    """Two rows put in flight inside a transaction that is rolled back: one whose lease ran out
    five seconds ago, one with a minute left; docs queries 1 and 10 find the first."""
    queries = _doc_queries()
    now = datetime.now(UTC)
    ids = world.ids
    with world.orc.db.engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(update(Container).where(Container.id == ids["idle"]).values(
                state="mounting", owner="elsewhere:4242:1", lease_expires_at=now
                - timedelta(seconds=5)))
            connection.execute(update(Container).where(Container.id == ids["ok"]).values(
                state="stopping", owner="here:1:1", lease_expires_at=now + timedelta(seconds=60)))
            rows = {r.name: r for r in connection.execute(text(
                "SELECT name, in_flight, lease_expired, lease_seconds_left, owner "
                "FROM container_status WHERE in_flight = 1"))}
            stuck = connection.execute(text(queries[1].sql)).all()
            expiring = connection.execute(text(queries[10].sql)).all()
        finally:
            transaction.rollback()
    assert set(rows) == {"idle", "ok"}
    assert (rows["idle"].lease_expired, rows["idle"].owner) == (1, "elsewhere:4242:1")
    assert -7 < rows["idle"].lease_seconds_left < -4
    assert rows["ok"].lease_expired == 0 and 50 < rows["ok"].lease_seconds_left <= 60
    assert sorted(r.name for r in stuck) == ["idle", "ok"]
    assert [r.name for r in expiring] == ["idle"]


# -- container_timeline -----------------------------------------------------------------------


@pytest.mark.parametrize(("started", "finished", "milliseconds"), [
    ("05.999300", "05.999967", 0.667),  # SQLite parses .999967 to the millisecond: second 06
    ("05.999700", "06.000100", 0.4),    # across a second
    ("05.000000", "07.500000", 2500.0),
])
def test_timeline_durations_are_exact_near_a_second_boundary(
    world: World, started: str, finished: str, milliseconds: float
) -> None:
    """Operators read ``duration_ms`` as it is: at the end of a second it was 1 000 ms off."""
    def moment(seconds: str) -> datetime:
        whole, micro = seconds.split(".")
        return datetime(2026, 1, 2, 3, 4, int(whole), int(micro), tzinfo=UTC)

    with world.orc.db.engine.begin() as connection:
        audit_id = connection.execute(insert(TransitionAudit).values(
            container_id=UNOWNED, trigger="probe", source="created", dest="created",
            started_at=moment(started), finished_at=moment(finished), error="",
            actor="test").returning(TransitionAudit.id)).scalar_one()
    try:
        [row] = world.query("SELECT duration_ms FROM container_timeline WHERE id = :id",
                            id=audit_id)
        assert row["duration_ms"] == pytest.approx(milliseconds, abs=1e-6)
    finally:
        with world.orc.db.engine.begin() as connection:
            connection.execute(delete(TransitionAudit).where(TransitionAudit.id == audit_id))


def test_container_timeline_is_the_history_with_names_durations_and_exit_codes(
    world: World
) -> None:
    orc = world.orc
    rows = world.query("SELECT * FROM container_timeline ORDER BY id")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    for name, container_id in world.ids.items():
        mine = [r for r in rows if r["container_id"] == container_id]
        history = orc.history(container_id)
        assert len(mine) == len(history), name
        dies = iter(orc.events(container=container_id, actions=["die"]))
        for row, record in zip(mine, history, strict=True):
            assert row["name"] == name  # "gone" is removed: its name comes from its create event
            assert (row["trigger"], row["source"], row["dest"], row["error"]) == (
                record.trigger, record.source, record.dest, record.error)
            assert _utc(row["started_at"]) == record.started_at
            assert _utc(row["finished_at"]) == record.finished_at
            assert row["duration_ms"] == pytest.approx(record.duration * 1000, abs=1e-6)
            if record.trigger in ("exit", "fail"):
                assert row["exit_code"] == next(dies).attributes["exitCode"]
            else:
                assert row["exit_code"] is None
        assert next(dies, None) is None, f"{name}: a die event without its transition"
    gone = [r["trigger"] for r in rows if r["container_id"] == world.ids["gone"]]
    assert gone[-2:] == ["remove", "removed"]
    flaky = [(r["trigger"], r["exit_code"]) for r in rows if r["name"] == "flaky"]
    assert flaky.count(("start", None)) == 3 and flaky.count(("exit", 1)) == 3


# -- device_usage -----------------------------------------------------------------------------


def test_device_usage_names_the_owner_of_every_layer(world: World) -> None:
    orc = world.orc
    image = orc.images()[0]
    containers = orc.list(all=True)
    rows = world.query("SELECT * FROM device_usage")

    vfs = sorted(((r["kind"], r["layer"], r["container_name"], r["container_state"],
                   r["image_name"], r["size"]) for r in rows if r["storage_driver"] == "vfs"),
                 key=repr)
    expected = [("image", image.top_layer, None, None, image.name, image.size)]
    expected += [("container", c.id, c.name, c.state, c.image, 0) for c in containers]
    assert vfs == sorted(expected, key=repr)

    store = SQLDeviceMetadataStore(orc.db.engine)
    thin = {r["layer"]: r for r in rows if r["storage_driver"] == "devicemapper"}
    devices = {d.hash: d for d in store.list_devices(POOL)}
    assert set(thin) == set(devices) == {"base", image.top_layer, world.ids["idle"], UNOWNED}
    for layer, row in thin.items():
        device = devices[layer]
        assert (row["pool"], row["device_id"], row["parent"], row["size"], row["state"],
                row["mount_count"]) == (POOL, device.device_id, device.parent, device.size,
                                        device.state.value, device.mount_count)
    assert (thin["base"]["kind"], thin["base"]["image_name"]) == ("base", None)
    assert (thin[image.top_layer]["kind"], thin[image.top_layer]["image_name"]) == (
        "image", "busybox:latest")
    idle = thin[world.ids["idle"]]
    assert (idle["kind"], idle["container_name"], idle["image_name"], idle["state"]) == (
        "container", "idle", "busybox", "active")
    assert (thin[UNOWNED]["kind"], thin[UNOWNED]["state"]) == ("unowned", "creating")


# -- the queries of docs/database.md ----------------------------------------------------------


@dataclass(frozen=True)
class DocQuery:
    number: int
    title: str
    sql: str


def _doc_queries() -> dict[int, DocQuery]:
    """The ```sql blocks under "## Ten useful queries", by the number of their heading."""
    text_ = DOCS.read_text()
    section = text_[text_.index("## Ten useful queries"):]
    found = {}
    for match in re.finditer(r"^### (\d+)\. (.+?)$(.*?)(?=^### |\Z)", section, re.M | re.S):
        blocks = re.findall(r"```sql\n(.*?)```", match.group(3), re.S)
        assert len(blocks) == 1, f"query {match.group(1)} should have one sql block"
        number = int(match.group(1))
        found[number] = DocQuery(number, match.group(2), blocks[0].strip().rstrip(";"))
    return found


QUERIES = _doc_queries()


def test_the_docs_have_ten_queries_and_document_every_table_and_view() -> None:
    assert sorted(QUERIES) == list(range(1, 11))
    import models

    text_ = DOCS.read_text()
    for table in [*models.Base.metadata.tables.values()]:
        assert f"### `{table.name}`" in text_ or f"`{table.name}`" in text_, table.name
        for column in table.columns:
            assert f"`{column.name}`" in text_, f"{table.name}.{column.name} is not documented"
    for view in ("container_status", "container_timeline", "device_usage", "alembic_version"):
        assert f"`{view}`" in text_


@pytest.mark.parametrize("number", sorted(QUERIES), ids=[f"q{n}" for n in sorted(QUERIES)])
def test_every_query_of_the_docs_runs_and_answers(world: World, number: int) -> None:
    query = QUERIES[number]
    rows = world.query(query.sql)
    if number in (1, 10):  # nothing is in flight here; see test_in_flight_rows_...
        assert rows == []
    elif number == 2:
        same_day = world.query("SELECT CURRENT_DATE AS today")[0]["today"]
        if str(same_day) == world.populated_on.date().isoformat() == \
                datetime.now(UTC).date().isoformat():
            died = {(r["name"], r["died_while"], r["exit_code"]) for r in rows}
            assert {("ok", "running", 0), ("bad", "running", 3), ("gone", "running", 0),
                    ("broken", "starting", 128), ("flaky", "running", 1)} <= died
            broken = next(r for r in rows if r["name"] == "broken")
            assert "starting the process" in broken["error"]
    elif number == 3:
        assert len(rows) == 4 + 1 + len(world.orc.list(all=True))
        assert {r["kind"] for r in rows} == {"base", "image", "container", "unowned"}
    elif number == 4:
        assert 0 < len(rows) <= 10
        durations = [r["duration_ms"] for r in rows]
        assert durations == sorted(durations, reverse=True)
    elif number == 5:
        assert [(r["name"], r["restart_count"], r["starts"]) for r in rows] == [("flaky", 2, 3)]
    elif number == 6:
        assert [r["action"] for r in rows] == ["create", "start"]  # web still runs
    elif number == 7:
        assert [(r["image"], r["containers"]) for r in rows if r["state"] == "exited"] == [
            ("busybox:latest", 3)]
        assert sum(r["containers"] for r in rows) == len(world.orc.list(all=True))
    elif number == 8:
        assert rows == []  # every container here runs with network_mode=none
    elif number == 9:
        assert [(r["step"], r["failures"]) for r in rows] == [("starting", 1)]


def test_the_views_come_and_go_with_their_migration(tmp_path: Path) -> None:
    from fsm.store.engine import open_engine
    from fsm.store.schema import upgrade

    url = f"sqlite:///{tmp_path / 'v.db'}"
    engine = open_engine(url)
    upgrade(engine, url, "0004_views")

    def views() -> list[str]:
        with engine.connect() as connection:
            return sorted(connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'view'").scalars())

    assert views() == ["container_status", "container_timeline", "device_usage"]
    from alembic import command

    from fsm.store.schema import alembic_config

    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0003_thin_devices")
    assert views() == []
