"""operator views: container_status, container_timeline, device_usage

Revision ID: 0004_views
Revises: 0003_thin_devices
Create Date: 2026-11-23

Three read-only views for operators' plain SQL (``docs/database.md`` describes every column):

- ``container_status``: one row per container with its image name, whether it is in flight,
  whether its lease has expired, and how long it has been in its current state;
- ``container_timeline``: every committed transition with the container's name (taken from the
  ``create`` event once the row is gone) and its duration in milliseconds;
- ``device_usage``: which storage layer belongs to which container or image: devicemapper thin
  devices from ``thin_devices``, and the vfs layers of images and containers.

Views are not in the models' metadata and alembic's autogenerate only compares tables, so
``alembic check`` ignores them. The SQL differs per dialect only where time arithmetic does
(SQLite stores timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` text, PostgreSQL as ``timestamp``).

Note for later migrations on SQLite: a batch ``ALTER`` of a table a view reads (containers,
images, transitions, events, thin_pools, thin_devices) ends with ``ALTER TABLE ... RENAME``,
which SQLite refuses while a view names the dropped table. Such a migration must drop the views
first and create them again afterwards (``drop_views()`` / ``create_views()`` below show how).
"""

from __future__ import annotations

from alembic import op

revision = "0004_views"
down_revision = "0003_thin_devices"
branch_labels = None
depends_on = None

VIEWS = ("container_status", "container_timeline", "device_usage")

IN_FLIGHT = "'mounting', 'networking', 'starting', 'stopping', 'removing'"

# -- dialect-specific pieces -------------------------------------------------------------------

#: the current time as a naive UTC timestamp, in the stored columns' format (SQLite's %f has
#: milliseconds: three zeros make them the six digits of microseconds SQLAlchemy writes)
_NOW = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')",
    "postgresql": "(now() AT TIME ZONE 'UTC')",
}


def _seconds_between(dialect: str, earlier: str, later: str) -> str:
    """``later - earlier`` in seconds, as a floating-point number, to the microsecond."""
    if dialect == "sqlite":
        # julianday() keeps only milliseconds: whole seconds from strftime('%s'), plus the
        # microseconds SQLAlchemy always writes after the dot (characters 21 to 26)
        return (
            f"((CAST(strftime('%s', {later}) AS INTEGER)"
            f" - CAST(strftime('%s', {earlier}) AS INTEGER))"
            f" + (CAST(substr({later}, 21, 6) AS INTEGER)"
            f" - CAST(substr({earlier}, 21, 6) AS INTEGER)) / 1000000.0)"
        )
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


def _json_text(dialect: str, column: str, key: str) -> str:
    if dialect == "sqlite":
        return f"json_extract({column}, '$.{key}')"
    return f"({column} ->> '{key}')"


def _create_statements(dialect: str) -> list[str]:
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
    {_seconds_between(dialect, now, 'c.lease_expires_at')} AS lease_seconds_left,
    {state_since} AS state_since,
    {_seconds_between(dialect, state_since, now)} AS seconds_in_state
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
    {_seconds_between(dialect, 't.started_at', 't.finished_at')} * 1000.0 AS duration_ms,
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


def create_views() -> None:
    for statement in _create_statements(op.get_bind().dialect.name):
        op.execute(statement)


def drop_views() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")


def upgrade() -> None:
    create_views()


def downgrade() -> None:
    drop_views()
