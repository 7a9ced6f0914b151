"""thin pools and thin devices of the devicemapper storage driver

Revision ID: 0003_thin_devices
Revises: 0002_networks
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_thin_devices"
down_revision = "0002_networks"
branch_labels = None
depends_on = None

THIN_DEVICE_STATES = ("creating", "created", "active", "deleting", "deleted", "faulty")


def upgrade() -> None:
    op.create_table(
        "thin_pools",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("data_file", sa.String(4096), nullable=True),
        sa.Column("metadata_file", sa.String(4096), nullable=True),
        sa.Column("pool_device", sa.String(4096), nullable=False),
        sa.Column("block_size_sectors", sa.Integer(), nullable=False),
        sa.Column("base_size", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("open_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("open_device_hash", sa.String(64), nullable=True),
        sa.Column("open_device_id", sa.Integer(), nullable=True),
        sa.Column("base_fs_uuid", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "(open_transaction_id IS NULL AND open_device_hash IS NULL"
            " AND open_device_id IS NULL) OR (open_transaction_id IS NOT NULL"
            " AND open_device_hash IS NOT NULL AND open_device_id IS NOT NULL)",
            name=op.f("ck_thin_pools_open_transaction_whole"),
        ),
        sa.CheckConstraint(
            "block_size_sectors > 0", name=op.f("ck_thin_pools_block_size_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thin_pools")),
        sa.UniqueConstraint("name", name=op.f("uq_thin_pools_name")),
    )
    states = ", ".join(f"'{s}'" for s in THIN_DEVICE_STATES)
    op.create_table(
        "thin_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("parent", sa.String(64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mount_count", sa.Integer(), nullable=False),
        sa.Column("mount_path", sa.String(4096), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(f"state IN ({states})", name=op.f("ck_thin_devices_state")),
        sa.CheckConstraint(
            "device_id BETWEEN 0 AND 16777215", name=op.f("ck_thin_devices_device_id_24_bit")
        ),
        sa.CheckConstraint(
            "mount_count >= 0", name=op.f("ck_thin_devices_mount_count_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["pool_id"],
            ["thin_pools.id"],
            name=op.f("fk_thin_devices_pool_id_thin_pools"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thin_devices")),
        sa.UniqueConstraint("pool_id", "device_id", name=op.f("uq_thin_devices_pool_id_device_id")),
        sa.UniqueConstraint("pool_id", "hash", name=op.f("uq_thin_devices_pool_id_hash")),
    )


def downgrade() -> None:
    op.drop_table("thin_devices")
    op.drop_table("thin_pools")
