"""networks and endpoints

Revision ID: 0002_networks
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_networks"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("driver", sa.String(16), nullable=False),
        sa.Column("bridge", sa.String(15), nullable=False),
        sa.Column("subnet", sa.String(43), nullable=False),
        sa.Column("gateway", sa.String(39), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_networks"),
        sa.UniqueConstraint("name", name="uq_networks_name"),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("container_id", sa.String(64), nullable=False),
        sa.Column("network_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(39), nullable=False),
        sa.Column("mac", sa.String(17), nullable=False),
        sa.Column("veth", sa.String(15), nullable=False),
        sa.Column("netns", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["container_id"], ["containers.id"],
            name="fk_endpoints_container_id_containers", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["network_id"], ["networks.id"], name="fk_endpoints_network_id_networks"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_endpoints"),
        sa.UniqueConstraint(
            "container_id", "network_id", name="uq_endpoints_container_id_network_id"
        ),
        sa.UniqueConstraint("network_id", "ip", name="uq_endpoints_network_id_ip"),
    )


def downgrade() -> None:
    op.drop_table("endpoints")
    op.drop_table("networks")
