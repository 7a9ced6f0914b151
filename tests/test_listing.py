"""Listing (``orc.list``, ``berth ps``): the same containers as ``get`` returns them, newest
first, read through an index without a sort; ``berth ps`` reads the database through its driver
alone (no SQLAlchemy import) and prints what the API lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from fsm import ConfigError, Orchestrator, StartFailed
from fsm.listing import list_statement

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
    dialect = orc.engine.dialect.name
    statement = list_statement(dialect, states)
    with orc.engine.connect() as connection:
        if dialect == "sqlite":
            plan = " / ".join(row[3] for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", tuple(states or ())))
            assert "TEMP B-TREE" not in plan, plan
        else:
            # an empty table is cheapest to scan and sort: forbid that, so the plan shows
            # whether the index can give the order at all
            connection.execute(text("SET enable_seqscan = off"))
            connection.execute(text("SET enable_sort = off"))
            plan = " / ".join(row[0] for row in connection.exec_driver_sql(
                f"EXPLAIN {statement}", tuple(states or ())))
            assert "Index Scan Backward" in plan and "Sort" not in plan, plan
    index = "ix_containers_state_created_at_id" if states else "ix_containers_created_at_id"
    assert index in plan, plan


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
