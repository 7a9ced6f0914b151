"""layered images: image names, layers per node, the image a container was created from

Revision ID: 0008_layered_images
Revises: 0007_container_run
Create Date: 2026-12-02

- ``image_names``: the names (``repo:tag``) an image goes by, one image per name; they move out of
  ``images.name``.
- ``images`` gains ``top_layer`` (the chain ID of its top layer), ``config`` (the OCI image
  config), ``accounts`` (its ``/etc/passwd`` and ``/etc/group``) and ``repo_digest``.
- ``layers``: every storage layer on a node, an image's (keyed by chain ID) or a container's own,
  with its parent, state (``applying``, ``ready``, ``removing``), owner, lease and reference count.
  An image imported before this revision becomes a one-layer image whose layer id is its old id
  (its storage layer keeps its name); each container gets its layer row. Layers are written for
  ``$BERTH_NODE`` (else the host name, as berth defaults it) and for every node holding a
  container of the image.
- ``containers.image``: the image as the container was created from it (Docker's
  ``Config.Image``), so listings need no join.
- ``events.type``: ``container``, or ``image`` for an image's events.

The views are recreated over the new tables; this migration carries its own copy of their SQL
(0006's, for the downgrade, and the new one), as migrations never import each other.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op

revision = "0008_layered_images"
down_revision = "0007_container_run"
branch_labels = None
depends_on = None

VIEWS = ("container_status", "container_timeline", "device_usage")

IN_FLIGHT = "'mounting', 'networking', 'starting', 'stopping', 'removing'"

_NOW = {
    "sqlite": "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')",
    "postgresql": "(now() AT TIME ZONE 'UTC')",
}

#: an image's name for the views: its first name in order, else NULL (dangling)
_IMAGE_NAME = "(SELECT min(n.name) FROM image_names n WHERE n.image_id = {image_id})"


def _seconds_between(dialect: str, earlier: str, later: str) -> str:
    """``later - earlier`` in seconds, to the microsecond (0006's arithmetic)."""
    if dialect == "sqlite":
        return (
            f"((CAST(strftime('%s', substr({later}, 1, 19)) AS INTEGER)"
            f" - CAST(strftime('%s', substr({earlier}, 1, 19)) AS INTEGER))"
            f" + (CAST(substr({later}, 21, 6) AS INTEGER)"
            f" - CAST(substr({earlier}, 21, 6) AS INTEGER)) / 1000000.0)"
        )
    return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


def _json_text(dialect: str, column: str, key: str) -> str:
    if dialect == "sqlite":
        return f"json_extract({column}, '$.{key}')"
    return f"({column} ->> '{key}')"


def _create_statements(dialect: str, *, layered: bool) -> list[str]:
    """The views over this revision's tables (``layered``), or 0006's."""
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
    image, image_join = (("c.image", "") if layered
                         else ("i.name", "\nJOIN images i ON i.id = c.image_id"))
    container_status = f"""
CREATE VIEW container_status AS
SELECT
    c.id,
    substr(c.id, 1, 12) AS short_id,
    c.name,
    c.image_id,
    {image} AS image,
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
FROM containers c{image_join}
"""
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
    device_usage = _layered_device_usage() if layered else _device_usage_0006()
    return [container_status, container_timeline, device_usage]


def _layered_device_usage() -> str:
    top_of = "(SELECT min(i.id) FROM images i WHERE i.top_layer = {layer})"
    return f"""
CREATE VIEW device_usage AS
SELECT
    'devicemapper' AS storage_driver,
    p.name AS pool,
    d.device_id,
    d.hash AS layer,
    CASE
        WHEN d.hash = 'base' THEN 'base'
        ELSE COALESCE((SELECT min(l.kind) FROM layers l WHERE l.id = d.hash), 'unowned')
    END AS kind,
    c.id AS container_id,
    c.name AS container_name,
    c.state AS container_state,
    COALESCE(c.image_id, {top_of.format(layer='d.hash')}) AS image_id,
    COALESCE(c.image, {_IMAGE_NAME.format(image_id=top_of.format(layer='d.hash'))})
        AS image_name,
    d.parent,
    d.size,
    d.state,
    d.mount_count
FROM thin_devices d
JOIN thin_pools p ON p.id = d.pool_id
LEFT JOIN containers c ON c.id = d.hash
UNION ALL
SELECT
    l.storage_driver, NULL, NULL, l.id, l.kind, c.id, c.name, c.state,
    COALESCE(c.image_id, {top_of.format(layer='l.id')}),
    COALESCE(c.image, {_IMAGE_NAME.format(image_id=top_of.format(layer='l.id'))}),
    l.parent, l.size, l.state, NULL
FROM layers l
LEFT JOIN containers c ON c.id = l.id
WHERE l.storage_driver <> 'devicemapper'
"""


def _device_usage_0006() -> str:
    return """
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


def _create_views(*, layered: bool) -> None:
    for statement in _create_statements(op.get_bind().dialect.name, layered=layered):
        op.execute(statement)


def _drop_views() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")


def _this_node() -> str:
    # berth's own default (fsm.settings), repeated: a migration imports none of berth's code
    return os.environ.get("BERTH_NODE") or os.uname().nodename


def upgrade() -> None:
    _drop_views()
    op.create_table(
        "image_names",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("image_id", sa.String(64), sa.ForeignKey("images.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index(op.f("ix_image_names_image_id"), "image_names", ["image_id"])
    op.execute("INSERT INTO image_names (name, image_id, created_at)"
                " SELECT name, id, created_at FROM images")
    op.create_table(
        "layers",
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("storage_driver", sa.String(32), nullable=False),
        sa.Column("diff_id", sa.String(80), nullable=True),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("state IN ('applying', 'ready', 'removing')",
                           name=op.f("ck_layers_layer_state")),
        sa.CheckConstraint("kind IN ('image', 'container')", name=op.f("ck_layers_layer_kind")),
        sa.CheckConstraint("refs >= 0", name=op.f("ck_layers_refs_not_negative")),
    )
    op.create_index(op.f("ix_layers_node_parent"), "layers", ["node", "parent"])
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("image", sa.String(255), nullable=False, server_default=""))
    op.execute("UPDATE containers SET image = (SELECT i.name FROM images i"
               " WHERE i.id = containers.image_id)")
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("top_layer", sa.String(64), nullable=False,
                                   server_default=""))
        batch.add_column(sa.Column("config", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("accounts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("repo_digest", sa.String(160), nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("type", sa.String(16), nullable=False,
                                   server_default="container"))
    _layers_of_earlier_images()
    with op.batch_alter_table("images") as batch:
        batch.alter_column("config", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("accounts", existing_type=sa.JSON(), nullable=False)
        batch.drop_constraint("uq_images_name", type_="unique")
        batch.drop_column("name")
    _create_views(layered=True)


def _layers_of_earlier_images() -> None:
    """Each earlier image is a one-layer image, its layer the storage layer of its old id."""
    bind = op.get_bind()
    images = bind.execute(sa.text("SELECT id, storage_driver, size, created_at FROM images"))
    empty = sa.text("UPDATE images SET top_layer = id, config = :config, accounts = :accounts"
                    " WHERE id = :id")
    layer = sa.text(
        "INSERT INTO layers (node, id, kind, storage_driver, diff_id, parent, state, refs, size,"
        " owner, lease_expires_at, created_at) VALUES (:node, :id, :kind, :driver, NULL,"
        " :parent, 'ready', :refs, :size, NULL, NULL, :created_at)")
    for image_id, driver, size, created_at in list(images):
        bind.execute(empty, {"id": image_id, "accounts": "{}", "config": (
            '{"architecture": "", "os": "linux", "config": {},'
            ' "rootfs": {"type": "layers", "diff_ids": []}}')})
        users = list(bind.execute(sa.text(
            "SELECT id, node FROM containers WHERE image_id = :id"), {"id": image_id}))
        for node in sorted({_this_node(), *(n for _c, n in users)}):
            on_node = [c for c, n in users if n == node]
            bind.execute(layer, {"node": node, "id": image_id, "kind": "image",
                                 "driver": driver, "parent": None, "refs": 1 + len(on_node),
                                 "size": size, "created_at": created_at})
            for container_id in on_node:
                bind.execute(layer, {"node": node, "id": container_id, "kind": "container",
                                     "driver": driver, "parent": image_id, "refs": 0,
                                     "size": 0, "created_at": created_at})


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("name", sa.String(128), nullable=True))
    op.execute("UPDATE images SET name = COALESCE((SELECT min(n.name) FROM image_names n"
               " WHERE n.image_id = images.id), id)")
    with op.batch_alter_table("images") as batch:
        batch.alter_column("name", existing_type=sa.String(128), nullable=False)
        batch.create_unique_constraint("uq_images_name", ["name"])
        batch.drop_column("repo_digest")
        batch.drop_column("accounts")
        batch.drop_column("config")
        batch.drop_column("top_layer")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("type")
    op.drop_column("containers", "image")
    op.drop_index(op.f("ix_layers_node_parent"), table_name="layers")
    op.drop_table("layers")
    op.drop_index(op.f("ix_image_names_image_id"), table_name="image_names")
    op.drop_table("image_names")
    _create_views(layered=False)
