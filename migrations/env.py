"""alembic environment: runs migrations on a connection berth hands over, or on the URL from
``BERTH_DATABASE_URL`` / alembic.ini when run as ``alembic upgrade head``."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

import models

config = context.config
target_metadata = models.Base.metadata


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


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    from fsm.database import open_engine

    url = os.environ.get("BERTH_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    assert url, "set BERTH_DATABASE_URL or sqlalchemy.url in alembic.ini"
    engine = open_engine(url)
    with engine.connect() as connection:
        run_on(connection)
        connection.commit()


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
