"""Values as the database drivers hand them over and take them, for the statements berth runs
on the DBAPI connection itself (:mod:`fsm.sql`, :mod:`fsm.listing`, :mod:`fsm.direct_read`).

They follow what SQLAlchemy stores for the models' types, so that rows written either way are
the same rows (``tests/test_sql.py`` checks both directions on both databases):

- timestamps (``models.base.UTCDateTime``): naive UTC; on SQLite the text
  ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's format, always six digits of microseconds, so that
  text order is time order);
- JSON: text on SQLite, decoded by psycopg on PostgreSQL;
- booleans: 0 and 1 on SQLite.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def read_time(value: datetime | str | None) -> Any:
    """A stored timestamp → an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC)


def read_json(value: dict[str, Any] | str) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class Writer:
    """Python values → what one dialect's driver stores."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        if not self.sqlite:
            from psycopg.types.json import Json

            self._json_wrapper = Json

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: berth stores UTC, pass an aware datetime")
        naive = value.astimezone(UTC).replace(tzinfo=None)
        # isoformat with a fixed timespec is SQLITE_TIME_FORMAT, and several times faster
        return naive.isoformat(" ", "microseconds") if self.sqlite else naive

    def json(self, value: Any) -> Any:
        return json.dumps(value) if self.sqlite else self._json_wrapper(value)

    def bool(self, value: bool) -> Any:
        return int(value) if self.sqlite else value
