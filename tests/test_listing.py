"""Listing (``orc.list``, ``berth ps``): the same containers as ``get`` returns them, newest
first, read through an index without a sort; ``berth ps`` reads the database through its driver
alone (no SQLAlchemy import) and prints what the API lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from fsm import ConfigError, Orchestrator, StartFailed
from fsm.cli import main
from fsm.listing import list_statement
from fsm.quick_ps import quick_ps
from fsm.revisions import head_revision

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


@pytest.mark.parametrize("inline_states", [False, True], ids=["placeholders", "literals"])
@pytest.mark.parametrize("states", [["running"], None], ids=["ps", "ps -a"])
def test_listing_walks_an_index_backwards_instead_of_sorting(orc: Orchestrator,
                                                             states: list[str] | None,
                                                             inline_states: bool) -> None:
    dialect = orc.engine.dialect.name
    statement = list_statement(dialect, states, inline_states=inline_states)
    parameters = () if inline_states else tuple(states or ())
    with orc.engine.connect() as connection:
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


def test_the_listing_writes_only_plain_state_names_as_literals() -> None:
    statement = list_statement("postgresql", ["running", "exited"], "c.id", inline_states=True)
    assert "WHERE c.state IN ('running', 'exited') ORDER BY" in statement
    for state in ["it's", "running') OR ('a' = 'a", "", "Running", "r\\", "\u00e9t\u00e9"]:
        with pytest.raises(ValueError):
            list_statement("postgresql", [state], "c.id", inline_states=True)


_PS_WITHOUT_SQLALCHEMY = """
import atexit, sys
atexit.register(lambda: print("imported sqlalchemy:", "sqlalchemy" in sys.modules,
                              file=sys.stderr))
from fsm.cli import main
main(sys.argv[1:])
"""


def test_berth_ps_reads_the_database_without_sqlalchemy(orc: Orchestrator, image: str,
                                                        database_url: str, root: Path) -> None:
    _populate(orc, image)
    env = {**os.environ, "BERTH_DATABASE_URL": database_url, "BERTH_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-c", _PS_WITHOUT_SQLALCHEMY, "ps", "-a", "--format",
                           "json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported sqlalchemy: False" in done.stderr
    assert json.loads(done.stdout) == [c.to_dict() for c in orc.list(all=True)]
    table = subprocess.run([sys.executable, "-c", _PS_WITHOUT_SQLALCHEMY, "ps", "-a"], env=env,
                           capture_output=True, text=True, timeout=60)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["CONTAINER", "ID"] and len(lines) == 4
    assert [line.split()[-1] for line in lines[1:]] == ["broken", "done", "idle"]


# -- berth ps's quick path (fsm.quick_ps): the same table as the full CLI, without click -------

_QUICK_FORMS = [[], ["-a"], ["--all"], ["-q"], ["--quiet"], ["-aq"], ["-qa", "-a"],
                ["--all", "--quiet"]]


def _age_rows(orc: Orchestrator) -> None:
    """Move every timestamp days back, so that "N days ago" cannot tick between two prints."""
    from sqlalchemy import update

    from models.container import Container

    with orc.engine.begin() as connection:
        for c in orc.list(all=True):
            moved = {field: getattr(c, field) - timedelta(days=3, hours=5)
                     for field in ("created_at", "started_at", "finished_at")
                     if getattr(c, field) is not None}
            connection.execute(update(Container).where(Container.id == c.id).values(moved))


def _watch_psql(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each of quick_ps's reads through psql answered (False: it fell back to the
    driver), in order."""
    import fsm.psql_read

    answered: list[bool] = []
    read = fsm.psql_read.fetch_listing_through_psql

    def watched(*args: object) -> object:
        rows = read(*args)  # type: ignore[arg-type]
        answered.append(rows is not None)
        return rows

    monkeypatch.setattr(fsm.psql_read, "fetch_listing_through_psql", watched)
    return answered


def test_quick_ps_prints_what_the_full_cli_prints(orc: Orchestrator, image: str,
                                                 database_url: str, root: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _populate(orc, image)
    running = orc.create(image, ["sleep", "600"], name="serving", network_mode="none")
    orc.start(running.id)
    _age_rows(orc)
    monkeypatch.setenv("BERTH_ROOT", str(root))
    monkeypatch.setenv("BERTH_DATABASE_URL", database_url)
    through_psql = _watch_psql(monkeypatch)
    for args in _QUICK_FORMS:
        quick = quick_ps(args)
        assert quick is not None, args
        with pytest.raises(SystemExit) as exited:
            main(["ps", *args])
        assert exited.value.code == 0
        assert (quick + "\n" if quick else "") == capsys.readouterr().out, args
    table = quick_ps(["-a"])
    assert table is not None
    lines = table.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["serving", "broken", "done", "idle"]
    assert "Up 3 days" in lines[1] and "Exited (3) 3 days ago" in lines[3]
    assert quick_ps(["-q"]) == running.id[:12]
    # on PostgreSQL every form was read by psql, on SQLite none
    on_postgresql = database_url.startswith("postgresql")
    assert through_psql == [True] * (len(_QUICK_FORMS) + 2 if on_postgresql else 0)


def _fake_psql(directory: Path, script: str) -> str:
    """A PATH whose psql runs ``script`` (sh)."""
    directory.mkdir()
    (directory / "psql").write_text(f"#!/bin/sh\n{script}\n")
    (directory / "psql").chmod(0o755)
    return f"{directory}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.pg)],
                         indirect=True)
def test_quick_ps_reads_through_the_driver_where_psql_cannot(
        orc: Orchestrator, image: str, database_url: str, root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(orc, image)
    # what CSV must quote, and text that is not ASCII, through psql and the driver alike
    orc.create(image, ["printf", 'a,"b"\r\n', "\u00e9t\u00e9 \\N"], name="quoted",
               network_mode="none")
    _age_rows(orc)
    monkeypatch.setenv("BERTH_ROOT", str(root))
    monkeypatch.setenv("BERTH_DATABASE_URL", database_url)
    through_psql = _watch_psql(monkeypatch)
    table, ids = quick_ps(["-a"]), quick_ps(["-q", "-a"])
    assert through_psql == [True, True]
    with pytest.raises(SystemExit):
        main(["ps", "-a"])
    assert table is not None and table + "\n" == capsys.readouterr().out
    assert "quoted" in table and ids is not None and len(ids.splitlines()) == 4
    head = head_revision()
    cannot: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
        "no psql on PATH": lambda patch: patch.setenv("PATH", str(tmp_path / "nothing")),
        "psql fails": lambda patch: patch.setenv("PATH", _fake_psql(
            tmp_path / "failing", "echo 'psql: error: connection refused' >&2; exit 2")),
        "another schema revision": lambda patch: patch.setattr(
            "fsm.psql_read.head_revision", lambda: "0000_other"),
        "output cut short": lambda patch: patch.setenv("PATH", _fake_psql(
            tmp_path / "cut", f"printf '%s\\n%s' '{head}' 'abc,\"unterminated'")),
        "rows of another width": lambda patch: patch.setenv("PATH", _fake_psql(
            tmp_path / "narrow", f"printf '%s\\n%s\\n' '{head}' 'abc,def'")),
    }
    for why, break_psql in cannot.items():
        with monkeypatch.context() as patch:
            break_psql(patch)
            through_psql.clear()
            assert (quick_ps(["-a"]), quick_ps(["-q", "-a"])) == (table, ids), why
            assert through_psql == [False, False], why


@pytest.mark.parametrize("args", [["--filter", "state=exited"], ["--format", "json"], ["-h"],
                                  ["--help"], ["-x"], ["-a", "extra"]])
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
    m for m in ("click", "sqlalchemy", "fsm.cli", "psycopg") if m in sys.modules), file=sys.stderr))
sys.argv = ["berth", *sys.argv[1:]]
from fsm.console import main
main()
"""


def test_the_console_script_answers_ps_without_click_sqlalchemy_or_psycopg(
        orc: Orchestrator, image: str, database_url: str, root: Path) -> None:
    _populate(orc, image)
    env = {**os.environ, "BERTH_DATABASE_URL": database_url, "BERTH_ROOT": str(root)}
    quick = subprocess.run([sys.executable, "-c", _CONSOLE, "ps", "-a"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert quick.returncode == 0, quick.stderr
    assert "imported: []" in quick.stderr
    assert [line.split()[-1] for line in quick.stdout.splitlines()[1:]] == ["broken", "done",
                                                                            "idle"]
    full = subprocess.run([sys.executable, "-c", _CONSOLE, "ps", "-a", "--filter", "name=done"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert full.returncode == 0, full.stderr
    # the full CLI reads PostgreSQL through psycopg (fsm.direct_read)
    driver = ["psycopg"] if database_url.startswith("postgresql") else []
    assert f"imported: {['click', 'fsm.cli', *driver]}" in full.stderr
    assert [line.split()[-1] for line in full.stdout.splitlines()[1:]] == ["done"]


def test_the_console_script_hands_a_new_root_to_the_full_cli(tmp_path: Path) -> None:
    """No database yet: the quick path does not create one; the full CLI does, and lists."""
    env = {**os.environ, "BERTH_ROOT": str(tmp_path / "fresh")}
    env.pop("BERTH_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", _CONSOLE, "ps"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'fsm.cli'" in done.stderr and done.stdout.split()[:2] == ["CONTAINER", "ID"]
    assert (tmp_path / "fresh" / "berth.db").is_file()


@pytest.mark.parametrize(("conninfo", "without", "password"), [
    ("postgresql://berth:s%40cr%3At@db.example:5433/berth?sslmode=require",
     "postgresql://berth@db.example:5433/berth?sslmode=require", {"PGPASSWORD": "s@cr:t"}),
    ("postgresql://berth:pw@/berth?host=/run/postgresql",
     "postgresql://berth@/berth?host=/run/postgresql", {"PGPASSWORD": "pw"}),
    ("postgresql://berth@/berth?host=/tmp", "postgresql://berth@/berth?host=/tmp", {}),
    ("postgresql:///berth?host=/tmp", "postgresql:///berth?host=/tmp", {}),
])
def test_psql_never_gets_the_password_on_its_command_line(conninfo: str, without: str,
                                                           password: dict[str, str]) -> None:
    from fsm.psql_read import split_password

    assert split_password(conninfo) == (without, password)
