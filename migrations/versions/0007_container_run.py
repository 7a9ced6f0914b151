"""containers.run: which start a row is at, so that an exit counts only for its own run

Revision ID: 0007_container_run
Revises: 0006_view_seconds
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_container_run"
down_revision = "0006_view_seconds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("containers") as batch:
        batch.add_column(sa.Column("run", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    # in place (SQLite 3.35+ drops a column itself): a batch copy of the table would be refused
    # while the views of 0004 read it
    op.drop_column("containers", "run")
