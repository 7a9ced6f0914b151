"""indexes for listing: containers by (state, created_at, id) and by (created_at, id)

Revision ID: 0005_listing_indexes
Revises: 0004_views
Create Date: 2026-11-24

``berth ps`` lists the running containers newest first, ``ps -a`` every container newest first.
With only ``ix_containers_state`` the database found the rows by state and then sorted them
(SQLite: ``USE TEMP B-TREE FOR ORDER BY``); at 100 000 rows ``ps -a`` sorted the whole table.
Both orders now come from walking an index backwards (``ORDER BY created_at DESC, id DESC``).
``ix_containers_state`` is dropped: the new composite index starts with ``state`` and serves
every lookup by state (recovery's ``state IN (...)`` included), so keeping both would only cost
every transition a second index update.

Indexes only: no table is altered, so the views of 0004 need not be dropped and recreated.
"""

from __future__ import annotations

from alembic import op

revision = "0005_listing_indexes"
down_revision = "0004_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_containers_state_created_at_id", "containers",
                    ["state", "created_at", "id"])
    op.create_index("ix_containers_created_at_id", "containers", ["created_at", "id"])
    op.drop_index("ix_containers_state", table_name="containers")


def downgrade() -> None:
    op.create_index("ix_containers_state", "containers", ["state"])
    op.drop_index("ix_containers_created_at_id", table_name="containers")
    op.drop_index("ix_containers_state_created_at_id", table_name="containers")
