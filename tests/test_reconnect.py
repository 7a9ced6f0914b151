"""A PostgreSQL server that drops berth's connections (a restart, an idle timeout, an operator's
``pg_terminate_backend``): the next operation still works. A connection is pinged before use,
except by ``fsm.sql``'s checkouts of one in use within ``fsm.database.PING_AFTER_IDLE_S``: a read
through ``fsm.sql.SQL.read`` (an operation's first statements, ``list``, recovery's scan) that
finds it gone is made again on a new pool."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsm import Orchestrator, database
from fsm.errors import NoSuchContainer, NoSuchImage
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.pg

_names = iter(range(1_000_000))


@pytest.fixture
def pg_orc(postgres: PostgresServer, tmp_path: Path) -> Iterator[Orchestrator]:
    url = postgres.create_database(f"berth_reconnect_{next(_names)}")
    orchestrator = Orchestrator(database_url=url, root=tmp_path / "root", storage="vfs")
    yield orchestrator
    orchestrator.close()


def _drop_connections(server: PostgresServer, orc: Orchestrator) -> int:
    """Terminate every server process of the orchestrator's database, as a restart would."""
    import psycopg

    database = orc.engine.url.database
    with psycopg.connect(host=str(server.socket_dir), port=server.port, user=server.user,
                         dbname="postgres", autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (database,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_dropped_while_idle_is_found_by_the_ping(
        postgres: PostgresServer, pg_orc: Orchestrator, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NoSuchContainer):
        pg_orc.get("nothing-here")
    assert _drop_connections(postgres, pg_orc) >= 1
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 0.0)  # every reused connection is idle
    # a read through SQLAlchemy, not fsm.sql.SQL.read: only the ping can save it
    assert pg_orc.events() == []
    assert pg_orc.images() == []


def test_a_connection_dropped_within_the_idle_window_is_read_again(
        postgres: PostgresServer, pg_orc: Orchestrator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 3600.0)  # no ping at all
    with pytest.raises(NoSuchContainer):
        pg_orc.get("nothing-here")
    # each read below is the first after the server dropped every connection: it finds its
    # connection gone and reads again on a new pool (fsm.sql.SQL.read); the caller sees the
    # answer, not the lost connection
    assert _drop_connections(postgres, pg_orc) >= 1
    with pytest.raises(NoSuchContainer):
        pg_orc.get("nothing-here")
    assert _drop_connections(postgres, pg_orc) >= 1
    with pytest.raises(NoSuchImage):
        pg_orc.create("nothing-here", ["true"])
    assert _drop_connections(postgres, pg_orc) >= 1
    assert pg_orc.list(all=True) == []
    assert _drop_connections(postgres, pg_orc) >= 1
    assert pg_orc.recover() == {"failed": [], "exited": [], "adopted": [], "skipped": []}



@pytest.mark.parametrize("read", ["events", "images", "history"])
def test_a_read_through_sqlalchemy_is_pinged_even_right_after_use(
        postgres: PostgresServer, pg_orc: Orchestrator, monkeypatch: pytest.MonkeyPatch,
        read: str) -> None:
    """Only fsm.sql's checkouts skip the ping of a connection used within the idle window (their
    reads are made again); a read through SQLAlchemy has no second attempt, so it is pinged."""
    monkeypatch.setattr(database, "PING_AFTER_IDLE_S", 3600.0)  # fsm.sql's: never pinged
    reads = {"events": pg_orc.events, "images": pg_orc.images,
             "history": lambda: pg_orc.history("f" * 64)}
    assert reads[read]() == []  # the pooled connection is now in use a moment ago
    assert _drop_connections(postgres, pg_orc) >= 1
    assert reads[read]() == []
