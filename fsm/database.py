"""Engines with the pragmas berth relies on, and the schema-revision check."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, PoolProxiedConnection, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, NoSuchModuleError

from fsm.errors import BerthError, ConfigError, SchemaOutOfDate
from fsm.revisions import head_revision, migrations_dir

SQLITE_BUSY_TIMEOUT_MS = 10_000
#: a PostgreSQL connection idle for longer is pinged before :mod:`fsm.sql` uses it (any other
#: use pings it always: :func:`_ping_when_idle`)
PING_AFTER_IDLE_S = 1.0


def open_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys, a busy timeout, and ``BEGIN
    IMMEDIATE`` for every transaction, so that two writers queue on the busy timeout instead of
    failing on a read lock that cannot be upgraded."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigError(
            "database_url", url, "an SQLAlchemy URL such as sqlite:////path/berth.db or "
            "postgresql+psycopg://user@host/db"
        ) from error
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed, pool_use_lifo=True)
        except (NoSuchModuleError, ImportError) as error:
            raise ConfigError(
                "database_url", url, "a PostgreSQL URL needs psycopg: pip install 'berth[postgres]'"
            ) from error
        _ping_when_idle(engine)
        return engine
    raise ConfigError("database_url", url, "a sqlite:/// or postgresql:// URL")


#: set while :func:`checkout_for_retrying_reads` checks out, on this thread
_RETRYING_READS = threading.local()


def checkout_for_retrying_reads(engine: Engine) -> PoolProxiedConnection:
    """A pooled connection for :class:`fsm.sql.SQL`, whose statements start with reads that
    are made again on a new pool if the connection turns out dropped: it is not pinged if it
    was in use within :data:`PING_AFTER_IDLE_S` (:func:`_ping_when_idle`)."""
    _RETRYING_READS.active = True
    try:
        return engine.raw_connection()
    finally:
        _RETRYING_READS.active = False


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, except for :mod:`fsm.sql`'s checkouts of a connection
    back in use within :data:`PING_AFTER_IDLE_S` of its last use.

    An operation checks out once, so a pre-ping is one more round trip per operation (a tenth of
    a lifecycle's time on PostgreSQL, ``benchmarks/fsm_overhead.py``). A connection the server
    dropped (a restart, an idle timeout) has sat idle through that; the pings still find it, and
    the pool replaces every connection as old. What they do not find is a connection dropped
    within the last second; but an operation's first statements are reads, through
    :meth:`fsm.sql.SQL.read`, as are ``list`` and recovery's scan: one that finds its connection
    gone is made again on a new pool, before any side effect. Every other checkout (SQLAlchemy's:
    ``events``, ``history``, ``images``, the bridge's records) is pinged as by pre-ping, since
    nothing would read it again. ``tests/test_reconnect.py`` shows each path.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None:
            return  # just connected
        if (getattr(_RETRYING_READS, "active", False)
                and time.monotonic() - idle_since < PING_AFTER_IDLE_S):
            return  # in use a moment ago, and its first read would be made again
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # as pre-ping does: every connection older than this one goes too
                raise InvalidatePoolError() from error
            raise


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise ConfigError(
            "database_url", url, "a SQLite file (several processes share it), not :memory:"
        )
    path = Path(database)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # created here so it is 0600 from the start: it holds every container's environment
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                           pool_use_lifo=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy's "begin" below issue BEGIN itself rather than pysqlite's deferred one
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # a reader: each statement is its own implicit transaction, no write lock
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def reader(engine: Engine) -> Engine:
    """The same pool for reads: no transaction to begin and end around a lone SELECT, and on
    SQLite no write lock taken for it."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, url: str, revision: str = "head") -> None:
    from alembic import command

    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(engine: Engine, url: str, *, embedded: bool, lock_dir: Path) -> None:
    """Check that the database is at the head revision.

    An empty database, or the embedded default at an older revision, is upgraded (under a file
    lock, so two processes starting at once do not both create tables). Any other database at an
    older revision is the operator's to upgrade: :class:`SchemaOutOfDate` says how.
    """
    head = head_revision()
    current = _current_or_error(engine, url)
    if current == head:
        return
    with _file_lock(lock_dir / ".schema.lock"):
        current = _current_or_error(engine, url)
        if current == head:
            return
        empty = current is None and not inspect(engine).get_table_names()
        if not (embedded or empty):
            if current is not None and not _is_known(current):
                raise BerthError(
                    f"the database {url} is at schema revision {current}, which this berth does "
                    "not know: it was written by a newer berth; upgrade berth"
                )
            raise SchemaOutOfDate(_safe_url(url), current, head)
        upgrade(engine, url)


def _current_or_error(engine: Engine, url: str) -> str | None:
    from sqlalchemy.exc import OperationalError

    try:
        return current_revision(engine)
    except OperationalError as error:
        raise BerthError(f"cannot open the database {_safe_url(url)}: {error.orig}") from error


def _is_known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory(str(migrations_dir())).get_revision(revision) is not None
    except Exception:
        return False


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class _file_lock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
