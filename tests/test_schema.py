"""The schema: migrations and models agree, and a database at an older revision is handled."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fsm import Orchestrator, SchemaOutOfDate
from fsm.database import current_revision, open_engine, upgrade
from fsm.revisions import head_revision

REPO = Path(__file__).resolve().parents[1]


def _alembic(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), *args],
        env={**os.environ, "BERTH_DATABASE_URL": database_url}, cwd=REPO,
        capture_output=True, text=True,
    )


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


def test_a_database_at_an_older_revision_must_be_upgraded_by_the_operator(
    database_url: str, tmp_path: Path
) -> None:
    engine = open_engine(database_url)
    upgrade(engine, database_url, "0001_initial")
    with pytest.raises(SchemaOutOfDate, match="run `berth db upgrade`") as raised:
        Orchestrator(database_url=database_url, root=tmp_path / "root")
    assert raised.value.current == "0001_initial" and raised.value.head == head_revision()
    assert current_revision(engine) == "0001_initial"  # nothing was changed behind their back


def test_the_embedded_default_is_upgraded_in_place(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BERTH_DATABASE_URL", raising=False)
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    url = f"sqlite:///{root / 'berth.db'}"
    upgrade(open_engine(url), url, "0001_initial")
    orc = Orchestrator(root=root)
    assert current_revision(orc.engine) == head_revision()
    orc.close()


def test_data_root_is_0700_and_the_sqlite_file_0600(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
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
