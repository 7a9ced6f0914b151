"""views: whole seconds of a SQLite timestamp without rounding its fraction

Revision ID: 0006_view_seconds
Revises: 0005_listing_indexes
Create Date: 2026-11-24

0004's views compute a time difference on SQLite as the difference of the whole seconds,
``strftime('%s', t)``, plus that of the six digits of microseconds. But SQLite parses a time to
the nearest millisecond first: ``05.999967`` became second 06, so a transition from
``05.999300`` to ``05.999967`` lasted 1000.667 ms in ``container_timeline`` instead of 0.667
(and ``container_status``'s ``lease_seconds_left`` and ``seconds_in_state`` could be a second
off the same way). The whole seconds are now taken from the text up to the seconds only.
PostgreSQL's arithmetic was right and is unchanged; its views are recreated all the same, from
the same definitions.

This migration carries its own copy of the views' SQL, as 0004 wrote it but for the whole
seconds, so that 0004 stays as it was applied: a migration never imports another one.
``downgrade()`` recreates 0004's views exactly (``mended=False``).
"""

from __future__ import annotations

from alembic import op

revision = "0006_view_seconds"
down_revision = "0005_listing_indexes"
branch_labels = None
depends_on = None

VIEWS = ("container_status", "container_timeline", "device_usage")

IN_FLIGHT = "'mounting', 'networking', 'starting', 'stopping', 'removing'"

#: the current time as a naive UTC timestamp, in the stored columns' format (SQLite's %f has
#: milliseconds: three zeros make them the six digits of microseconds SQLAlchemy writes)
_NOW = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')",
    "postgresql": "(now() AT TIME ZONE 'UTC')",
}


def _seconds_between(dialect: str, mended: bool, earlier: str, later: str) -> str:
    """``later - earlier`` in seconds, as a floating-point number, to the microsecond.

    On SQLite, whole seconds from ``strftime('%s')`` plus the microseconds SQLAlchemy always
    writes after the dot (characters 21 to 26); ``julianday()`` keeps only milliseconds.
    ``mended``: ``strftime`` reads only the first 19 characters, ``YYYY-MM-DD HH:MM:SS``, which
    have no fraction to round (0006); else the whole timestamp, as 0004 did.
    """
    if dialect == "sqlite":
        def whole(time: str) -> str:
            return f"substr({time}, 1, 19)" if mended else time

        return (
            f"((CAST(strftime('%s', {whole(later)}) AS INTEGER)"
            f" - CAST(strftime('%s', {whole(earlier)}) AS INTEGER))"
            f" + (CAST(substr({later}, 21, 6) AS INTEGER)"
            f" - CAST(substr({earlier}, 21, 6) AS INTEGER)) / 1000000.0)"
        )
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


def _json_text(dialect: str, column: str, key: str) -> str:
    if dialect == "sqlite":
        return f"json_extract({column}, '$.{key}')"
    return f"({column} ->> '{key}')"


def _create_statements(dialect: str, *, mended: bool) -> list[str]:
    """The views' ``CREATE VIEW`` statements: with 0006's arithmetic (``mended``) or as 0004
    created them."""
    if dialect not in _NOW:
        raise NotImplementedError(f"berth's views support sqlite and postgresql, not {dialect}")
    now = _NOW[dialect]
    state_since = (
        "COALESCE((SELECT t.finished_at FROM transitions t WHERE t.container_id = c.id"
        " ORDER BY t.id DESC LIMIT 1), c.created_at)"
    )
    if dialect == "sqlite":
        lease_expired = f"julianday(c.lease_expires_at) <= julianday({now})"
    else:
        lease_expired = f"c.lease_expires_at <= {now}"
    container_status = f"""
CREATE VIEW container_status AS
SELECT
    c.id,
    substr(c.id, 1, 12) AS short_id,
    c.name,
    c.image_id,
    i.name AS image,
    c.state,
    c.exit_code,
    c.error,
    c.pid,
    c.node,
    c.created_at,
    c.started_at,
    c.finished_at,
    c.restart_count,
    c.has_been_started_before,
    c.manually_stopped,
    c.owner,
    c.lease_expires_at,
    CASE WHEN c.state IN ({IN_FLIGHT}) THEN 1 ELSE 0 END AS in_flight,
    CASE WHEN c.lease_expires_at IS NOT NULL AND {lease_expired} THEN 1 ELSE 0 END
        AS lease_expired,
    {_seconds_between(dialect, mended, now, 'c.lease_expires_at')} AS lease_seconds_left,
    {state_since} AS state_since,
    {_seconds_between(dialect, mended, state_since, now)} AS seconds_in_state
FROM containers c
JOIN images i ON i.id = c.image_id
"""
    # the die event is written in the same database transaction as its exit/fail transition,
    # with the same timestamp
    died_with = (
        f"(SELECT CAST({_json_text(dialect, 'e.attributes', 'exitCode')} AS INTEGER)"
        " FROM events e WHERE e.container_id = t.container_id AND e.action = 'die'"
        " AND e.time = t.finished_at ORDER BY e.id LIMIT 1)"
    )
    created_name = (
        f"(SELECT {_json_text(dialect, 'e.attributes', 'name')} FROM events e"
        " WHERE e.container_id = t.container_id AND e.action = 'create'"
        " ORDER BY e.id LIMIT 1)"
    )
    container_timeline = f"""
CREATE VIEW container_timeline AS
SELECT
    t.id,
    t.container_id,
    COALESCE(c.name, {created_name}) AS name,
    t.trigger,
    t.source,
    t.dest,
    t.started_at,
    t.finished_at,
    {_seconds_between(dialect, mended, 't.started_at', 't.finished_at')} * 1000.0 AS duration_ms,
    CASE WHEN t.trigger IN ('exit', 'fail') THEN {died_with} END AS exit_code,
    t.error,
    t.actor
FROM transitions t
LEFT JOIN containers c ON c.id = t.container_id
"""
    device_usage = """
CREATE VIEW device_usage AS
SELECT
    'devicemapper' AS storage_driver,
    p.name AS pool,
    d.device_id,
    d.hash AS layer,
    CASE
        WHEN d.hash = 'base' THEN 'base'
        WHEN c.id IS NOT NULL THEN 'container'
        WHEN i.id IS NOT NULL THEN 'image'
        ELSE 'unowned'
    END AS kind,
    c.id AS container_id,
    c.name AS container_name,
    c.state AS container_state,
    COALESCE(i.id, ci.id) AS image_id,
    COALESCE(i.name, ci.name) AS image_name,
    d.parent,
    d.size,
    d.state,
    d.mount_count
FROM thin_devices d
JOIN thin_pools p ON p.id = d.pool_id
LEFT JOIN containers c ON c.id = d.hash
LEFT JOIN images i ON i.id = d.hash
LEFT JOIN images ci ON ci.id = c.image_id
UNION ALL
SELECT
    i.storage_driver, NULL, NULL, i.id, 'image', NULL, NULL, NULL, i.id, i.name, NULL, i.size,
    NULL, NULL
FROM images i
WHERE i.storage_driver <> 'devicemapper'
UNION ALL
SELECT
    i.storage_driver, NULL, NULL, c.id, 'container', c.id, c.name, c.state, i.id, i.name, i.id,
    NULL, NULL, NULL
FROM containers c
JOIN images i ON i.id = c.image_id
WHERE i.storage_driver <> 'devicemapper'
"""
    return [container_status, container_timeline, device_usage]


def _create_views(*, mended: bool) -> None:
    for statement in _create_statements(op.get_bind().dialect.name, mended=mended):
        op.execute(statement)


def _drop_views() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    _drop_views()
    _create_views(mended=True)


def downgrade() -> None:
    _drop_views()
    _create_views(mended=False)
