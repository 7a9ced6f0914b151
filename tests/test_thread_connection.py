"""On SQLite every thread runs the transitions on a connection of its own, kept outside the pool
(``fsm.sql.SQL.thread_connection``): threads never share one, a forked child opens its own and
leaves its parent's open, and ``close`` closes it."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from fsm import Orchestrator


@pytest.fixture
def sqlite_orc(tmp_path: Path) -> Orchestrator:
    return Orchestrator(database_url=f"sqlite:///{tmp_path / 'berth.db'}", root=tmp_path / "root",
                        storage="vfs")


def _answers(connection: sqlite3.Connection) -> bool:
    return connection.execute("SELECT count(*) FROM containers").fetchone() == (0,)


def test_each_thread_has_its_own_connection_with_berths_pragmas(
        sqlite_orc: Orchestrator) -> None:
    mine = sqlite_orc.sql.thread_connection()
    assert sqlite_orc.sql.thread_connection() is mine
    theirs: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: theirs.append(sqlite_orc.sql.thread_connection()))
    worker.start()
    worker.join()
    assert theirs[0] is not mine
    assert mine.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert mine.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert mine.in_transaction is False
    sqlite_orc.close()


def test_a_forked_child_opens_its_own_and_leaves_the_parents_open(
        sqlite_orc: Orchestrator) -> None:
    parent = sqlite_orc.sql.thread_connection()
    assert sqlite_orc.list(all=True) == []
    child = os.fork()
    if child == 0:  # the child: exit status 0 only if it got a connection of its own that works
        ok = False
        try:
            own = sqlite_orc.sql.thread_connection()
            ok = own is not parent and _answers(own) and sqlite_orc.list(all=True) == []
        finally:
            os._exit(0 if ok else 1)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sqlite_orc.sql.thread_connection() is parent and _answers(parent)
    sqlite_orc.close()


def test_close_closes_this_threads_connection(sqlite_orc: Orchestrator) -> None:
    before = sqlite_orc.sql.thread_connection()
    sqlite_orc.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        before.execute("SELECT 1")
    after = sqlite_orc.sql.thread_connection()  # a statement after close opens another
    assert after is not before and _answers(after)
    sqlite_orc.sql.close()
