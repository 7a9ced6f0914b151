"""The schema revision this berth needs, read from its migration files without importing
alembic or SQLAlchemy: every orchestrator checks it when it opens (the exit hook included), and
``berth ps`` checks it before reading the database directly (:mod:`fsm.direct_read`)."""

from __future__ import annotations

import re
from pathlib import Path

from fsm.errors import BerthError

_REVISION = re.compile(r"^revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*=\s*[\"']([^\"']+)[\"']", re.MULTILINE)


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def head_revision() -> str:
    """The newest migration's id."""
    revisions: dict[str, str | None] = {}
    for script in (migrations_dir() / "versions").glob("*.py"):
        text = script.read_text()
        revision = _REVISION.search(text)
        down = _DOWN_REVISION.search(text)
        if revision:
            revisions[revision.group(1)] = down.group(1) if down else None
    parents = {down for down in revisions.values() if down}
    heads = [r for r in revisions if r not in parents]
    if len(heads) != 1:
        raise BerthError(f"the migrations have {len(heads)} heads ({', '.join(heads)}): "
                         "this berth installation is broken")
    return heads[0]
