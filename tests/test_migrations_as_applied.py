"""Migrations stay as they were applied: each one carries its own SQL and depends on nothing
that changes after it lands (another migration, berth's code), and a later migration that
replaces an earlier one's objects puts them back exactly on its downgrade."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine

from fsm.store.engine import open_engine
from fsm.store.schema import alembic_config, migrations_dir, upgrade

MIGRATIONS = migrations_dir()
#: what migrations/env.py and every migration may import: the models as they are (a migration
#: that needs a model's values as applied must copy them), alembic, SQLAlchemy, the stdlib
ALLOWED = {"models", "alembic", "sqlalchemy", "__future__", *sys.stdlib_module_names}
#: names that import a module chosen at run time
DYNAMIC_IMPORTS = {"import_module", "__import__", "load_module", "exec_module",
                   "spec_from_file_location", "run_path", "run_module"}


def _imports(path: Path) -> list[str]:
    """What ``path`` imports, anywhere in it (``from . import x`` as ``.``), and any call that
    imports a module by a computed name (as ``dynamic:NAME``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call):
            function = node.func
            name = (function.attr if isinstance(function, ast.Attribute)
                    else function.id if isinstance(function, ast.Name) else "")
            if name in DYNAMIC_IMPORTS:
                found.append(f"dynamic:{name}")
    return found


SCRIPTS = [*sorted((MIGRATIONS / "versions").glob("*.py")), MIGRATIONS / "env.py"]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_a_migration_imports_no_other_migration_and_nothing_of_berths_code(
    script: Path,
) -> None:
    imported = _imports(script)
    refused = [name for name in imported if name.partition(".")[0] not in ALLOWED]
    assert refused == [], (
        f"{script.name} imports {refused}: a migration may import only models, alembic, "
        "SQLAlchemy and the standard library; copy what it needs into it"
    )


def test_the_import_check_catches_what_0006_once_did(tmp_path: Path) -> None:
    script = tmp_path / "0099_example.py"
    script.write_text(
        "from importlib import import_module\n"
        "from fsm.database import open_engine\n"
        "from migrations.versions import x\n"
        "from . import sibling\n"
        "_views = import_module('migrations.versions.0004_views')\n"
    )
    assert _imports(script) == ["importlib", "fsm.database", "migrations.versions", ".",
                                "dynamic:import_module"]


def _views(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'view'")
        else:
            rows = connection.exec_driver_sql(
                "SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema()")
        return {name: sql for name, sql in rows}


def test_0006_replaces_0004s_views_and_puts_them_back_on_downgrade(database_url: str) -> None:
    engine = open_engine(database_url)
    upgrade(engine, database_url, "0005_listing_indexes")
    as_0004_made_them = _views(engine)
    assert sorted(as_0004_made_them) == ["container_status", "container_timeline",
                                         "device_usage"]
    upgrade(engine, database_url, "0006_view_seconds")
    mended = _views(engine)
    assert sorted(mended) == sorted(as_0004_made_them)
    if engine.dialect.name == "sqlite":
        # the time arithmetic changed: whole seconds from the text up to the seconds
        assert "substr(t.finished_at, 1, 19)" in mended["container_timeline"]
        assert "substr(t.finished_at, 1, 19)" not in as_0004_made_them["container_timeline"]
        assert mended["device_usage"] == as_0004_made_them["device_usage"]
    else:
        assert mended == as_0004_made_them  # PostgreSQL's arithmetic was right already
    config = alembic_config(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005_listing_indexes")
    assert _views(engine) == as_0004_made_them
    engine.dispose()
