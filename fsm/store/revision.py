"""The schema revision this berth was built for, known without loading alembic.

Every command opens the database and checks its revision; loading alembic and its migration
scripts for that costs about 0.2 s of each command's start. So the head is also written here,
and ``tests/test_schema.py`` ties it to what alembic's ``ScriptDirectory`` says: a database at
this revision is current; anything else goes to :func:`fsm.store.schema.ensure_schema`, which
asks alembic. Standard library only: ``berth ps``'s SQLite fast path reads it too.
"""

from __future__ import annotations

#: the newest migration's revision id (``alembic heads``)
HEAD = "0008_layered_images"
