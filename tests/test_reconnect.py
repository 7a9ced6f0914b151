"""A PostgreSQL server that drops berth's connections (a restart, an idle timeout, an operator's
``pg_terminate_backend``): a connection is pinged when an operation checks it out of the pool; a
read that finds its connection gone mid-operation is made again; a write is a clear error and
commits nothing (``fsm.store.engine.Connections``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsm import BerthError, Orchestrator
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

    database = orc.db.engine.url.database
    with psycopg.connect(host=str(server.socket_dir), port=server.port, user=server.user,
                         dbname="postgres", autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (database,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_dropped_while_idle_is_found_by_the_ping(
        postgres: PostgresServer, pg_orc: Orchestrator) -> None:
    with pytest.raises(NoSuchContainer):
        pg_orc.get("nothing-here")
    assert _drop_connections(postgres, pg_orc) >= 1
    # each operation checks a connection out of the pool, pinged first: the dropped one is
    # replaced before anything is read with it
    assert pg_orc.events() == []
    assert pg_orc.images() == []
    with pytest.raises(NoSuchImage):
        pg_orc.create("nothing-here", ["true"])
    assert _drop_connections(postgres, pg_orc) >= 1
    assert pg_orc.list(all=True) == []
    assert _drop_connections(postgres, pg_orc) >= 1
    assert pg_orc.recover() == {"failed": [], "exited": []}


def test_a_read_whose_connection_drops_mid_operation_is_made_again(
        postgres: PostgresServer, pg_orc: Orchestrator) -> None:
    with pg_orc.db.connections.operation():
        assert pg_orc.list(all=True) == []
        assert _drop_connections(postgres, pg_orc) >= 1
        # the operation's held connection is gone: the read finds out and reads again
        assert pg_orc.list(all=True) == []
        with pytest.raises(NoSuchContainer):
            pg_orc.get("nothing-here")


def test_a_write_whose_connection_drops_is_a_clear_error_and_changes_nothing(
        postgres: PostgresServer, pg_orc: Orchestrator, busybox_tar: Path) -> None:
    pg_orc.import_image("busybox", busybox_tar)
    created = pg_orc.create("busybox", ["true"], network_mode="none")
    with pg_orc.db.connections.operation():
        container = pg_orc.db.resolve(created.id)
        assert _drop_connections(postgres, pg_orc) >= 1
        with pytest.raises(BerthError, match="lost the connection to the database while writing"):
            pg_orc.runner.fire(container, "remove")
    after = pg_orc.get(created.id)
    assert (after.state, container.state, container.version) == ("created", "created", 1)
    assert [t.trigger for t in pg_orc.history(created.id)] == []
    pg_orc.remove(created.id)
    assert pg_orc.list(all=True) == []
