"""Values as the database drivers hand them back, turned into what the API returns, for the
statements berth runs on the DBAPI cursor (:mod:`fsm.sql`, :mod:`fsm.listing`,
:mod:`fsm.direct_read`). Without SQLAlchemy: ``berth ps`` reads through these alone. (Writing
needs no such module: :mod:`fsm.sql` stores values with SQLAlchemy's own bind processors.)

What the drivers hand back for the models' types:

- timestamps (``models.base.UTCDateTime``): naive UTC; on SQLite the text
  ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format, always six digits of microseconds);
- JSON: text on SQLite, decoded by psycopg on PostgreSQL;
- booleans: 0 and 1 on SQLite (the caller applies ``bool``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def read_time(value: datetime | str | None) -> Any:
    """A stored timestamp → an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def read_json(value: dict[str, Any] | str) -> Any:
    return json.loads(value) if isinstance(value, str) else value
