"""The schema revision: which one this berth needs, which one a database is at, and upgrades.

The one place that knows about revisions, and it asks alembic (``ScriptDirectory`` for the
migrations, ``MigrationContext`` for a database), so that what berth checks is what ``alembic
upgrade`` does. An orchestrator calls :func:`ensure_schema` when it opens; ``berth db`` calls
the rest.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from fsm.errors import BerthError, SchemaOutOfDate
from fsm.store.engine import write_transaction

#: the package of berth's alembic environment and migrations (installed with berth)
MIGRATIONS_PACKAGE = "migrations"
#: in the data root: held while a database is checked and upgraded
LOCK_NAME = ".schema.lock"


def migrations_dir() -> Path:
    """Where berth's migrations are, found without importing them: alembic loads them itself,
    and an installed berth has no alembic.ini to point there."""
    spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise BerthError(f"the {MIGRATIONS_PACKAGE!r} package is missing: this berth "
                         "installation is broken; reinstall berth")
    return Path(next(iter(locations)))


def alembic_config(url: str) -> Config:
    """alembic's settings for ``url``, made here rather than read from alembic.ini, which an
    installed berth does not have."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # the config is an INI parser: a % in a URL (an escaped password) must be doubled
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def _scripts() -> ScriptDirectory:
    """The migrations, read once per process: they do not change under a running berth."""
    return ScriptDirectory(str(migrations_dir()))


def head_revision() -> str:
    """The newest migration's id: the revision this berth's code is written for. Several heads
    (two migrations on the same parent) mean a broken installation, never a choice to make."""
    heads = _scripts().get_heads()
    if len(heads) != 1:
        raise BerthError(f"the migrations have {len(heads)} heads ({', '.join(heads) or 'none'}) "
                         "where there must be one: this berth installation is broken")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, or None for a database alembic has never touched."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, url: str, revision: str = "head") -> None:
    """Upgrade (or downgrade) the database to ``revision``, in one transaction on a connection
    of ``engine``, so that berth's engine settings (SQLite's foreign keys and busy timeout)
    apply; ``migrations/env.py`` uses the connection it is handed."""
    config = alembic_config(url)
    with write_transaction(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(engine: Engine, url: str, *, embedded: bool, lock_dir: Path) -> None:
    """Check that the database is at the head revision.

    An empty database, or the embedded default at an older revision, is upgraded (under a file
    lock in ``lock_dir``, so that two processes starting at once do not both create tables).
    Any other database at an older revision is the operator's to upgrade: :class:`SchemaOutOfDate`
    says how. A revision this berth does not know was written by a newer berth: no upgrade can
    help, and none is tried.
    """
    head = head_revision()
    current = _current_or_error(engine, url)
    if current == head:
        return
    with _file_lock(lock_dir / LOCK_NAME):
        current = _current_or_error(engine, url)
        if current == head:
            return
        if current is not None and not _is_known(current):
            raise BerthError(
                f"the database {_safe_url(url)} is at schema revision {current}, which this "
                "berth does not know: it was written by a newer berth; upgrade berth"
            )
        empty = current is None and not inspect(engine).get_table_names()
        if not (embedded or empty):
            raise SchemaOutOfDate(_safe_url(url), current, head)
        upgrade(engine, url)


def history() -> list[tuple[str, str]]:
    """Every migration as (revision, first line of its docstring), newest first: what ``berth
    db history`` prints."""
    revisions = []
    for script in _scripts().walk_revisions():
        lines = (script.doc or "").splitlines()
        revisions.append((script.revision, lines[0] if lines else ""))
    return revisions


def _current_or_error(engine: Engine, url: str) -> str | None:
    try:
        return current_revision(engine)
    except OperationalError as error:
        raise BerthError(f"cannot open the database {_safe_url(url)}: {error.orig}") from error


def _is_known(revision: str) -> bool:
    try:
        _scripts().get_revision(revision)
    except CommandError:
        return False
    return True


def _safe_url(url: str) -> str:
    """``url`` for a message: its password hidden."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (made 0600 if missing), released when the block ends
    or the process dies."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock
