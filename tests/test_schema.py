"""The schema: migrations and models agree, the revision berth reads is alembic's, and a
database at an older revision is handled."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import CheckConstraint, create_engine, inspect

from fsm.errors import BerthError, SchemaOutOfDate
from fsm.states import REMOVED, STATES
from fsm.store.engine import open_engine
from fsm.store.schema import (
    current_revision,
    ensure_schema,
    head_revision,
    history,
    upgrade,
)
from models import Container

REPO = Path(__file__).resolve().parents[1]


def _alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), *args],
        env={**os.environ, "BERTH_DATABASE_URL": database_url}, cwd=REPO,
        capture_output=True, text=True,
    )


def _quoted(sql: str) -> set[str]:
    """The string literals of a CHECK constraint's SQL, as SQLite or PostgreSQL prints it."""
    return set(re.findall(r"'([^']*)'", sql))


def test_upgrade_head_then_check_reports_no_difference(database_url: str) -> None:
    upgraded = _alembic(database_url, "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    checked = _alembic(database_url, "check")
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr


def test_downgrade_to_base_and_back(database_url: str) -> None:
    assert _alembic(database_url, "upgrade", "head").returncode == 0
    down = _alembic(database_url, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert _alembic(database_url, "upgrade", "head").returncode == 0


def test_head_revision_is_what_alembic_reports_and_an_upgrade_reaches(
    database_url: str,
) -> None:
    heads = _alembic(database_url, "heads")
    assert heads.returncode == 0, heads.stderr
    assert heads.stdout.split() == [head_revision(), "(head)"]
    engine = open_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine, database_url)
    assert current_revision(engine) == head_revision()
    current = _alembic(database_url, "current")
    assert current.stdout.split() == [head_revision(), "(head)"], current.stderr
    engine.dispose()


def test_history_is_every_migration_newest_first() -> None:
    listed = history()
    revisions = [revision for revision, _ in listed]
    assert revisions[0] == head_revision() and revisions[-1] == "0001_initial"
    assert len(revisions) == len(set(revisions)) and all(doc for _, doc in listed)
    shown = _alembic("sqlite://", "history")  # read from the files: no database
    assert shown.returncode == 0, shown.stderr
    # alembic prints "parent -> revision (head), first line of the doc", newest first
    assert [line.split(" -> ")[1].split(",")[0].split()[0]
            for line in shown.stdout.splitlines()] == revisions


def test_the_state_names_of_the_containers_table_are_the_lifecycles(
    database_url: str,
) -> None:
    """The CHECK constraint on ``containers.state`` allows every state of ``fsm/states.py``
    but ``removed`` (the row is deleted instead), in the models and in a migrated database."""
    stored = set(STATES) - {REMOVED}
    [model_check] = [c for c in Container.__table__.constraints
                     if isinstance(c, CheckConstraint) and str(c.name).endswith("state")]
    assert re.fullmatch(r"state IN \(.*\)", str(model_check.sqltext))
    assert _quoted(str(model_check.sqltext)) == stored

    engine = open_engine(database_url)
    upgrade(engine, database_url)
    [database_check] = [c for c in inspect(engine).get_check_constraints("containers")
                        if c["name"].endswith("state")]
    assert _quoted(database_check["sqltext"]) == stored
    engine.dispose()


def test_ensure_schema_creates_an_empty_database(database_url: str, tmp_path: Path) -> None:
    engine = open_engine(database_url)
    ensure_schema(engine, database_url, embedded=False, lock_dir=tmp_path)
    assert current_revision(engine) == head_revision()
    ensure_schema(engine, database_url, embedded=False, lock_dir=tmp_path)  # nothing to do
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_ensure_schema_upgrades_only_the_embedded_database(database_url: str,
                                                           tmp_path: Path) -> None:
    engine = open_engine(database_url)
    upgrade(engine, database_url, "0001_initial")
    with pytest.raises(SchemaOutOfDate, match="run `berth db upgrade`") as raised:
        ensure_schema(engine, database_url, embedded=False, lock_dir=tmp_path)
    assert raised.value.current == "0001_initial" and raised.value.head == head_revision()
    assert current_revision(engine) == "0001_initial"
    ensure_schema(engine, database_url, embedded=True, lock_dir=tmp_path)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.parametrize("embedded", [False, True])
def test_ensure_schema_refuses_a_revision_from_a_newer_berth(database_url: str, tmp_path: Path,
                                                             embedded: bool) -> None:
    engine = open_engine(database_url)
    upgrade(engine, database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(BerthError, match="9999_future, which this berth does not know"):
        ensure_schema(engine, database_url, embedded=embedded, lock_dir=tmp_path)
    assert current_revision(engine) == "9999_future"
    engine.dispose()


@pytest.mark.parametrize(("url", "shown"), [
    ("sqlite:////nonexistent/berth/x.db", "sqlite:////nonexistent/berth/x.db"),
    ("postgresql+psycopg://berth:s3cret@127.0.0.1:1/berth",
     "postgresql+psycopg://berth:***@127.0.0.1:1/berth"),
])
def test_ensure_schema_names_a_database_it_cannot_open_without_its_password(
    url: str, shown: str, tmp_path: Path
) -> None:
    engine = create_engine(url)  # not berth's engine, which refuses a missing directory itself
    with pytest.raises(BerthError, match="cannot open the database") as raised:
        ensure_schema(engine, url, embedded=False, lock_dir=tmp_path)
    assert f"cannot open the database {shown}: " in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_database_at_an_older_revision_must_be_upgraded_by_the_operator(
    database_url: str, tmp_path: Path
) -> None:
    from fsm import Orchestrator

    engine = open_engine(database_url)
    upgrade(engine, database_url, "0001_initial")
    with pytest.raises(SchemaOutOfDate, match="run `berth db upgrade`") as raised:
        Orchestrator(database_url=database_url, root=tmp_path / "root")
    assert raised.value.current == "0001_initial" and raised.value.head == head_revision()
    assert current_revision(engine) == "0001_initial"  # nothing was changed behind their back


def test_the_embedded_default_is_upgraded_in_place(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fsm import Orchestrator

    monkeypatch.delenv("BERTH_DATABASE_URL", raising=False)
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    url = f"sqlite:///{root / 'berth.db'}"
    upgrade(open_engine(url), url, "0001_initial")
    orc = Orchestrator(root=root)
    orc.close()
    assert current_revision(open_engine(url)) == head_revision()


def test_data_root_is_0700_and_the_sqlite_file_0600(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from fsm import Orchestrator

    monkeypatch.delenv("BERTH_DATABASE_URL", raising=False)
    monkeypatch.setenv("BERTH_ROOT", str(tmp_path / "from-env"))
    orc = Orchestrator()
    assert orc.settings.root == tmp_path / "from-env"
    assert stat.S_IMODE(os.stat(orc.settings.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(orc.settings.root / "berth.db").st_mode) == 0o600
    orc.close()


def test_sqlite_pragmas_are_set(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as connection:
        pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10_000}


def test_a_standalone_alembic_run_makes_a_new_sqlite_file_0600(tmp_path: Path) -> None:
    """``alembic upgrade`` by hand (migrations/env.py's own engine) creates the database file as
    berth does: readable by its owner only, since it holds every container's environment."""
    path = tmp_path / "by-hand.db"
    upgraded = _alembic(f"sqlite:///{path}", "upgrade", "head")
    assert upgraded.returncode == 0, upgraded.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_head_berth_checks_without_alembic_is_alembics_head() -> None:
    """fsm.store.revision.HEAD lets every command skip loading alembic when the database is
    current: it must be the head alembic's ScriptDirectory reports."""
    from fsm.store.revision import HEAD

    assert head_revision() == HEAD
