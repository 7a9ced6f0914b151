"""The declarative base every berth table hangs off.

Constraint names follow one convention so that migrations can name them
(``ck_containers_state``, ``uq_endpoints_network_id``) on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored without zone and always read back as aware UTC.

    SQLite has no zone-aware type; storing naive UTC everywhere keeps the two databases alike
    and keeps ``ORDER BY time`` meaningful for operators' plain SQL.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def utcnow() -> datetime:
    return datetime.now(UTC)


def naive_utc(value: datetime | None) -> datetime | None:
    """How :class:`UTCDateTime` hands a timestamp to the driver: naive, in UTC."""
    if value is None:
        return None
    zone = value.tzinfo
    if zone is None:
        raise ValueError(f"naive datetime {value!r}: berth stores UTC, pass an aware datetime")
    return (value if zone is UTC else value.astimezone(UTC)).replace(tzinfo=None)


def sqlite_stored_time(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite ``DATETIME`` stores for a :class:`UTCDateTime`:
    ``YYYY-MM-DD HH:MM:SS.ffffff``, always six digits of microseconds (fixed width, so the text
    sorts as the time does). The same as its bind processor, at a sixth of the cost."""
    naive = naive_utc(value)
    return None if naive is None else naive.isoformat(" ", "microseconds")
