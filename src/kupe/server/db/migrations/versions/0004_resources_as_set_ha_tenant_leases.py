"""clusters keep `resources` exactly as the client set them (null: never set) beside the
effective allocation; high availability; tenants carry reconciler leases (their deletion is
finished by the reconciler)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kupe.server.db.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The built-in catalogue's default cluster resources when rows were written before this
# revision: a stored quantity equal to its plan's default was filled in, not set, and so is no
# longer reported as set. (A client that sent exactly the default sees it as defaulted; the
# allocation is the same either way.)
_DEFAULTS = {
    "starter": ("1", "2Gi", "10Gi"),
    "pro": ("2", "4Gi", "20Gi"),
    "business": ("2", "8Gi", "50Gi"),
    "enterprise": ("4", "16Gi", "100Gi"),
}


def upgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        for column in ("cpu", "memory", "storage"):
            batch_op.add_column(sa.Column(f"allocated_{column}", sa.String(40), nullable=True))
            batch_op.alter_column(column, existing_type=sa.String(40), nullable=True)
        batch_op.add_column(
            sa.Column("high_availability", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("ha_enabled_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("ha_replicas_ready", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("ha_replicas_desired", sa.Integer(), nullable=False, server_default="1")
        )
    op.execute(
        "UPDATE clusters SET allocated_cpu = cpu, allocated_memory = memory, "
        "allocated_storage = storage"
    )
    for plan, defaults in _DEFAULTS.items():
        for column, default in zip(("cpu", "memory", "storage"), defaults, strict=True):
            op.execute(
                sa.text(
                    f"UPDATE clusters SET {column} = NULL WHERE {column} = :default "  # noqa: S608
                    "AND tenant_id IN (SELECT id FROM tenants WHERE plan = :plan)"
                ).bindparams(default=default, plan=plan)
            )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        for column in ("cpu", "memory", "storage"):
            batch_op.alter_column(
                f"allocated_{column}", existing_type=sa.String(40), nullable=False
            )
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_reconcile_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("failure_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_tenants_due",
            ["next_reconcile_at"],
            unique=False,
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        )
    # A tenant already being deleted is finished by the reconciler from now on.
    op.execute(
        "UPDATE tenants SET next_reconcile_at = created_at "
        "WHERE phase = 'Terminating' AND removed_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tenants_due",
            sqlite_where=sa.text("removed_at IS NULL"),
            postgresql_where=sa.text("removed_at IS NULL"),
        )
        for column in ("failure_count", "lease_expires_at", "lease_owner", "next_reconcile_at"):
            batch_op.drop_column(column)
    for column in ("cpu", "memory", "storage"):
        op.execute(f"UPDATE clusters SET {column} = allocated_{column} WHERE {column} IS NULL")  # noqa: S608
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        for column in ("ha_replicas_desired", "ha_replicas_ready", "ha_enabled_at"):
            batch_op.drop_column(column)
        batch_op.drop_column("high_availability")
        for column in ("cpu", "memory", "storage"):
            batch_op.alter_column(column, existing_type=sa.String(40), nullable=False)
            batch_op.drop_column(f"allocated_{column}")
