"""PostgreSQL: a transition committed as one statement.

On PostgreSQL every statement of ``BEGIN``, compare-and-swap, audit insert, event insert,
``COMMIT`` is a round trip to the server; a statement is a transaction of its own, so the same
all-or-nothing commit can be one statement whose other rows are inserted by data-modifying
``WITH`` clauses that select from the changed row::

    WITH changed AS (UPDATE containers SET ... WHERE id = ... AND version = ... AND state = ...
                     RETURNING 1),
         audit_row AS (INSERT INTO transitions (...) SELECT ... FROM changed),
         event_row AS (INSERT INTO events (...) SELECT ... FROM changed)
    SELECT count(*) FROM changed

No row changed, nothing inserted, and the count says so. ``benchmarks/fsm_overhead.py`` measures
the difference. A parameter in a select list has no column to take its type from, so each is
cast to its column's type; a string to its type without the length, since an explicit cast to
``VARCHAR(n)`` cuts a value that the insert itself would refuse.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Delete, Select, String, Table, Update, bindparam, cast, func, insert, literal
from sqlalchemy import select as select_
from sqlalchemy.types import TypeEngine

AUDIT_PREFIX = "a_"
EVENT_PREFIX = "e_"


def transition_statement(change: Update | Delete, audit: Table, events: Table | None
                         ) -> Select[Any]:
    """``change`` (an UPDATE or DELETE of one row) with an audit row and, if ``events`` is
    given, one event row; parameters of the audit and event rows are their column names with
    :data:`AUDIT_PREFIX` and :data:`EVENT_PREFIX`."""
    changed = change.returning(literal(1)).cte("changed")
    statement = select_(func.count()).select_from(changed)
    statement = statement.add_cte(_insert_if_changed(audit, changed, AUDIT_PREFIX, "audit_row"))
    if events is not None:
        statement = statement.add_cte(
            _insert_if_changed(events, changed, EVENT_PREFIX, "event_row"))
    return statement


def _insert_if_changed(table: Table, changed: Any, prefix: str, name: str) -> Any:
    # a column with a server default (``events.type``) is left to it, as a plain insert does
    columns = [column for column in table.columns
               if not column.primary_key and column.server_default is None]
    values = [cast(bindparam(prefix + column.name, type_=column.type), _without_length(column.type))
              for column in columns]
    return insert(table).from_select([c.name for c in columns],
                                     select_(*values).select_from(changed)).cte(name)


def _without_length(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    if isinstance(type_, String):
        return type(type_)()
    return type_
