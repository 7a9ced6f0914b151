"""berth stores a timestamp on SQLite itself (``models.base.sqlite_stored_time``, on the
transitions' hot path) rather than through SQLAlchemy's ``DATETIME`` bind processor: the two must
write the same text, or ``ORDER BY time`` and operators' SQL would see two formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from models.base import UTCDateTime, naive_utc, sqlite_stored_time

MOMENTS = [
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),  # no microseconds: isoformat would drop them
    datetime(2026, 11, 24, 5, 6, 7, 890123, tzinfo=UTC),
    datetime(2026, 11, 24, 1, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),
    datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),  # a three-digit year, zero-padded by both
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_the_same_text_as_sqlalchemys_sqlite_processor(moment: datetime) -> None:
    dialect = sqlite.dialect()
    theirs = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert theirs is not None
    assert sqlite_stored_time(moment) == theirs(moment)
    # asked again, and for a neighbouring instant: the same answer as SQLAlchemy's each time
    assert sqlite_stored_time(moment) == theirs(moment)
    assert sqlite_stored_time(moment + timedelta(microseconds=1)) == theirs(
        moment + timedelta(microseconds=1))


def test_none_is_null_and_a_naive_datetime_is_refused() -> None:
    assert sqlite_stored_time(None) is None and naive_utc(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_stored_time(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        naive_utc(datetime(2026, 1, 1))


def test_another_zone_is_stored_as_utc() -> None:
    moment = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert sqlite_stored_time(moment) == "2026-06-01 10:00:00.000000"
    assert naive_utc(moment) == datetime(2026, 6, 1, 10, 0)
