"""alembic environment: runs migrations on a connection berth hands over, or on the URL from
``BERTH_DATABASE_URL`` / alembic.ini when run as ``alembic upgrade head``.

It imports only ``models``, alembic and SQLAlchemy: the migrations must not depend on berth's
code, which changes after they are applied.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

import models

config = context.config
target_metadata = models.Base.metadata

#: how long a standalone run waits for a SQLite database that berth is writing
SQLITE_BUSY_TIMEOUT_S = 10.0


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place: batch mode copies the table instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def standalone_engine(url: str) -> Engine:
    """An engine for ``alembic upgrade`` run by hand, with what berth's own engines give a
    migration: psycopg for a bare ``postgresql://`` URL; on SQLite foreign keys on, a busy
    timeout, DDL inside the migration's transaction (``BEGIN IMMEDIATE``, as berth begins), and
    a new database file readable by its owner only (it holds every container's environment)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed)
    database = parsed.database
    if database and database != ":memory:" and not os.path.exists(database):
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's "begin" below issues BEGIN itself rather than pysqlite's deferred one
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = os.environ.get("BERTH_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    assert url, "set BERTH_DATABASE_URL or sqlalchemy.url in alembic.ini"
    engine = standalone_engine(url)
    try:
        with engine.connect() as connection:
            run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=os.environ.get("BERTH_DATABASE_URL") or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
