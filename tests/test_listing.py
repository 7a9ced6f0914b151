"""Listing (``orc.list``, ``berth ps``): the same containers as ``get`` returns them, newest
first, read through an index without a sort; ``berth ps``'s SQLite fast path
(:mod:`fsm.store.quick_listing`: the standard library's ``sqlite3``, no SQLAlchemy) prints what
the full CLI prints, and leaves everything else to it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from fsm import ConfigError, Orchestrator, StartFailed
from fsm.cli.app import run
from fsm.cli.quick_ps import quick_ps
from fsm.store import quick_listing
from fsm.store.containers import listing
from fsm.store.engine import open_engine
from fsm.store.schema import head_revision, upgrade

pytestmark = pytest.mark.root


def _populate(orc: Orchestrator, image: str) -> dict[str, str]:
    """created, exited (code 3), dead (a command that does not exist): oldest first."""
    ids = {}
    ids["created"] = orc.create(image, ["sleep", "1"], name="idle", env={"A": "1"},
                                network_mode="none").id
    exited = orc.create(image, ["sh", "-c", "exit 3"], name="done", network_mode="none")
    orc.start(exited.id)
    assert orc.wait(exited.id, timeout=60) == 3
    ids["exited"] = exited.id
    dead = orc.create(image, ["/no/such/binary"], name="broken", network_mode="none")
    with pytest.raises(StartFailed):
        orc.start(dead.id)
    ids["dead"] = dead.id
    return ids


def test_list_returns_what_get_returns_newest_first(orc: Orchestrator, image: str) -> None:
    ids = _populate(orc, image)
    listed = orc.list(all=True)
    assert [c.id for c in listed] == [ids["dead"], ids["exited"], ids["created"]]
    assert listed == [orc.get(c.id) for c in listed]  # every field, JSON and times included
    assert listed[1].exit_code == 3 and listed[1].finished_at is not None
    assert listed[2].config["env"] == {"A": "1"}
    assert orc.list() == []  # nothing running
    assert [c.id for c in orc.list(state="exited")] == [ids["exited"]]
    assert [c.id for c in orc.list(state=["created", "dead"])] == [ids["dead"], ids["created"]]


@pytest.mark.parametrize("state", ["sleeping", "removed", ["exited", "bogus"], []])
def test_list_names_an_unknown_state(orc: Orchestrator, state: object) -> None:
    with pytest.raises(ConfigError) as raised:
        orc.list(state=state)  # type: ignore[arg-type]
    assert raised.value.field == "state" and "running" in raised.value.allowed


@pytest.mark.parametrize("states", [["running"], None], ids=["ps", "ps -a"])
def test_listing_walks_an_index_backwards_instead_of_sorting(orc: Orchestrator,
                                                             states: list[str] | None) -> None:
    engine = orc.db.engine
    dialect = engine.dialect.name
    statement = str(listing(states).compile(dialect=engine.dialect,
                                            compile_kwargs={"literal_binds": True}))
    parameters = ()
    with engine.connect() as connection:
        if dialect == "sqlite":
            plan = " / ".join(row[3] for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "TEMP B-TREE" not in plan, plan
        else:
            # an empty table is cheapest to scan and sort: forbid that, so the plan shows
            # whether the index can give the order at all
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_sort = off"))
            plan = " / ".join(row[0] for row in connection.exec_driver_sql(
                f"EXPLAIN {statement}", parameters))
            assert "Index Scan Backward" in plan and "Sort" not in plan, plan
    index = "ix_containers_state_created_at_id" if states else "ix_containers_created_at_id"
    assert index in plan, plan


# -- berth ps's SQLite fast path (fsm.store.quick_listing, fsm.cli.quick_ps) --------------------

_QUICK_FORMS = [[], ["-a"], ["--all"], ["-q"], ["--quiet"], ["-aq"], ["-qa", "-a"],
                ["--all", "--quiet"]]


def _age_rows(orc: Orchestrator) -> None:
    """Move every timestamp days back, so that "N days ago" cannot tick between two prints."""
    from sqlalchemy import update

    from models.container import Container

    with orc.db.engine.begin() as connection:
        for c in orc.list(all=True):
            moved = {field: getattr(c, field) - timedelta(days=3, hours=5)
                     for field in ("created_at", "started_at", "finished_at")
                     if getattr(c, field) is not None}
            connection.execute(update(Container).where(Container.id == c.id).values(moved))


def _full_ps(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the full CLI (the orchestrator's ``list``) prints for ``berth ps ARGS``."""
    with pytest.raises(SystemExit) as exited:
        run(["ps", *args])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_quick_ps_prints_what_the_full_cli_prints(orc: Orchestrator, image: str,
                                                 database_url: str, root: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """On SQLite every plain form is answered by the fast path, as the full CLI answers it; on
    PostgreSQL none is: ``ps`` goes through the orchestrator."""
    _populate(orc, image)
    running = orc.create(image, ["sleep", "600"], name="serving", network_mode="none")
    orc.start(running.id)
    # what a table must keep as it is: a comma, quotes, a line break, text that is not ASCII
    orc.create(image, ["printf", 'a,"b"\r\n', "\u00e9t\u00e9 \\N"], name="quoted",
               network_mode="none")
    _age_rows(orc)
    monkeypatch.setenv("BERTH_ROOT", str(root))
    monkeypatch.setenv("BERTH_DATABASE_URL", database_url)
    on_sqlite = database_url.startswith("sqlite")
    for args in _QUICK_FORMS:
        quick, full = quick_ps(args), _full_ps(args, capsys)
        if not on_sqlite:
            assert quick is None, args
            continue
        assert quick is not None, args
        assert (quick + "\n" if quick else "") == full, args
    # the quoted command's line break is printed as it is: its line is two
    table = [line for line in _full_ps(["-a"], capsys).splitlines() if line.strip()]
    names = ["quoted", "serving", "broken", "done", "idle"]
    assert [line.split()[-1] for line in table if line.split()[-1] in names] == names
    assert "Up 3 days" in table[3] and "Exited (3) 3 days ago" in table[5]
    assert _full_ps(["-q"], capsys) == running.id[:12] + "\n"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_quick_listing_walks_an_index_backwards_instead_of_sorting(orc: Orchestrator
                                                                       ) -> None:
    with sqlite3.connect(orc.settings.database_url.removeprefix("sqlite:///")) as connection:
        for (what, every), statement in quick_listing.STATEMENTS.items():
            plan = " / ".join(row[3] for row in connection.execute(
                f"EXPLAIN QUERY PLAN {statement}"))
            assert "TEMP B-TREE" not in plan, (what, every, plan)
            index = "ix_containers_created_at_id" if every else "ix_containers_state_created_at_id"
            assert index in plan, (what, every, plan)


def test_the_quick_listing_reads_what_the_models_declare() -> None:
    """Every column its statements name is a column of the models, the one state it names is a
    state, and its schema revision is the head: a migration that changes any of these fails
    here until the fast path has been checked against it."""
    from models import CONTAINER_STATES, Container, Image

    tables = {"c": set(Container.__table__.columns.keys()),
              "i": set(Image.__table__.columns.keys())}
    named = set()
    for statement in quick_listing.STATEMENTS.values():
        for alias, column in re.findall(r"\b([ci])\.(\w+)", statement):
            assert column in tables[alias], (alias, column, statement)
            named.add(column)
        for state in re.findall(r"c\.state = '(\w+)'", statement):
            assert state in CONTAINER_STATES
    assert set(quick_listing.CONTAINER_COLUMNS) <= named
    assert head_revision() == quick_listing.SCHEMA_REVISION


def test_the_quick_listing_leaves_what_it_cannot_plainly_read_and_creates_nothing(
        tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    not_a_database = tmp_path / "junk.db"
    not_a_database.write_text("not a database\n" * 100)
    old = tmp_path / "old.db"
    upgrade(open_engine(f"sqlite:///{old}"), f"sqlite:///{old}", "0001_initial")
    urls = {
        "no such file": f"sqlite:///{missing}",
        "no such directory": f"sqlite:///{tmp_path / 'nowhere' / 'berth.db'}",
        "not a database": f"sqlite:///{not_a_database}",
        "an older schema": f"sqlite:///{old}",
        "options": f"sqlite:///{old}?timeout=5",
        "another driver": f"sqlite+pysqlite:///{old}",
        "in memory": "sqlite://",
        "PostgreSQL": "postgresql://berth@/berth?host=/nonexistent",
    }
    for why, url in urls.items():
        for every in (False, True):
            assert quick_listing.list_containers(url, every) is None, why
            assert quick_listing.list_ids(url, every) is None, why
    assert not missing.exists() and not (tmp_path / "nowhere").exists()
    # (SQLite's -wal and -shm files beside a database it read are its own)
    assert {p.name.partition("-")[0] for p in tmp_path.iterdir()} == {"junk.db", "old.db"}


@pytest.mark.parametrize("args", [["--filter", "state=exited"], ["--format", "json"], ["-h"],
                                  ["--help"], ["-x"], ["-a", "extra"]])
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_quick_ps_leaves_every_other_form_to_the_full_cli(orc: Orchestrator, database_url: str,
                                                          root: Path, args: list[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_ROOT", str(root))
    monkeypatch.setenv("BERTH_DATABASE_URL", database_url)
    assert quick_ps([]) is not None  # the database itself is readable
    assert quick_ps(args) is None


_CONSOLE = """
import atexit, sys
atexit.register(lambda: print("imported:", sorted(
    m for m in ("click", "sqlalchemy", "fsm.cli.app", "psycopg") if m in sys.modules),
    file=sys.stderr))
sys.argv = ["berth", *sys.argv[1:]]
from fsm.cli import main
main()
"""


def test_the_console_script_answers_ps_on_sqlite_without_click_or_sqlalchemy(
        orc: Orchestrator, image: str, database_url: str, root: Path) -> None:
    _populate(orc, image)
    env = {**os.environ, "BERTH_DATABASE_URL": database_url, "BERTH_ROOT": str(root)}
    plain = subprocess.run([sys.executable, "-c", _CONSOLE, "ps", "-a"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0, plain.stderr
    full_cli = ["click", "fsm.cli.app", *(["psycopg"] if "postgresql" in database_url else []),
                "sqlalchemy"]
    # on PostgreSQL, ps goes through the orchestrator
    assert f"imported: {[] if database_url.startswith('sqlite') else full_cli}" in plain.stderr
    assert [line.split()[-1] for line in plain.stdout.splitlines()[1:]] == ["broken", "done",
                                                                            "idle"]
    filtered = subprocess.run([sys.executable, "-c", _CONSOLE, "ps", "-a", "--filter",
                               "name=done"], env=env, capture_output=True, text=True, timeout=60)
    assert filtered.returncode == 0, filtered.stderr
    assert f"imported: {full_cli}" in filtered.stderr
    assert [line.split()[-1] for line in filtered.stdout.splitlines()[1:]] == ["done"]


def test_the_console_script_hands_a_new_root_to_the_full_cli(tmp_path: Path) -> None:
    """No database yet: the fast path does not create one; the full CLI does, and lists."""
    env = {**os.environ, "BERTH_ROOT": str(tmp_path / "fresh")}
    env.pop("BERTH_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", _CONSOLE, "ps"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'fsm.cli.app'" in done.stderr and done.stdout.split()[:2] == ["CONTAINER", "ID"]
    assert (tmp_path / "fresh" / "berth.db").is_file()
