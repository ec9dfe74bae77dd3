"""billing: the usage ledger, plan periods, versioned rates, observability usage, credits and
invoices

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from kupe.server.db.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_OPEN = sa.text("ended_at IS NULL")
_DRAFT = sa.text("phase = 'Draft'")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    op.create_table(
        "usage_intervals",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("cluster_id", sa.String(length=32), nullable=False),
        sa.Column("cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("storage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        _fk("usage_intervals", "tenant_id", "tenants"),
        _fk("usage_intervals", "cluster_id", "clusters"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_intervals")),
    )
    op.create_table(
        "plan_periods",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=63), nullable=False),
        sa.Column("platform_fee", sa.String(length=20), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        _fk("plan_periods", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_periods")),
    )
    op.create_table(
        "billing_rates",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("effective_from", UTCDateTime(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cpu_core_hour", sa.String(length=30), nullable=False),
        sa.Column("memory_gib_hour", sa.String(length=30), nullable=False),
        sa.Column("storage_gib_hour", sa.String(length=30), nullable=False),
        sa.Column("metrics_series_month", sa.String(length=30), nullable=False),
        sa.Column("logs_gb", sa.String(length=30), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_rates")),
        sa.UniqueConstraint("effective_from", name=op.f("uq_billing_rates_effective_from")),
    )
    op.create_table(
        "observability_usage",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("metrics_series", sa.BigInteger(), nullable=False),
        sa.Column("logs_gb", sa.String(length=30), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        _fk("observability_usage", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("tenant_id", "period", name=op.f("pk_observability_usage")),
    )
    op.create_table(
        "credits",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        _fk("credits", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credits")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=7), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_items", _JSON, nullable=False),
        sa.Column("subtotal", sa.String(length=20), nullable=False),
        sa.Column("credits_applied", sa.String(length=20), nullable=False),
        sa.Column("total", sa.String(length=20), nullable=False),
        sa.Column("estimate", _JSON, nullable=True),
        sa.Column("estimated_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("billed_at", UTCDateTime(), nullable=True),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("next_reconcile_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        _fk("invoices", "tenant_id", "tenants"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
    )
    with op.batch_alter_table("usage_intervals", schema=None) as batch_op:
        batch_op.create_index("ix_usage_intervals_tenant", ["tenant_id", "started_at"])
        batch_op.create_index(
            "uq_usage_intervals_open",
            ["cluster_id"],
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )
    with op.batch_alter_table("plan_periods", schema=None) as batch_op:
        batch_op.create_index("ix_plan_periods_tenant", ["tenant_id", "started_at"])
        batch_op.create_index(
            "uq_plan_periods_open",
            ["tenant_id"],
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        )
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_credits_tenant_id"), ["tenant_id"])
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("uq_invoices_tenant_name", ["tenant_id", "name"], unique=True)
        batch_op.create_index("ix_invoices_tenant_version", ["tenant_id", "resource_version"])
        batch_op.create_index(
            "ix_invoices_due",
            ["next_reconcile_at"],
            sqlite_where=_DRAFT,
            postgresql_where=_DRAFT,
        )
    # What is already running starts counting from its creation: live clusters get an open
    # interval with their current allocation, live tenants an open period on their plan (at
    # the catalogue's fee). Invoices are created at start-up, for the month of that moment.
    op.execute(
        "INSERT INTO usage_intervals (tenant_id, cluster_id, cpu_millis, memory_bytes, "
        "storage_bytes, started_at, ended_at) SELECT tenant_id, id, cpu_millis, memory_bytes, "
        "storage_bytes, created_at, NULL FROM clusters WHERE removed_at IS NULL"
    )
    op.execute(
        "INSERT INTO plan_periods (tenant_id, plan, platform_fee, started_at, ended_at) "
        "SELECT id, plan, NULL, created_at, NULL FROM tenants WHERE removed_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_due", sqlite_where=_DRAFT, postgresql_where=_DRAFT)
        batch_op.drop_index("ix_invoices_tenant_version")
        batch_op.drop_index("uq_invoices_tenant_name")
    with op.batch_alter_table("credits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_credits_tenant_id"))
    with op.batch_alter_table("plan_periods", schema=None) as batch_op:
        batch_op.drop_index("uq_plan_periods_open", sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.drop_index("ix_plan_periods_tenant")
    with op.batch_alter_table("usage_intervals", schema=None) as batch_op:
        batch_op.drop_index("uq_usage_intervals_open", sqlite_where=_OPEN, postgresql_where=_OPEN)
        batch_op.drop_index("ix_usage_intervals_tenant")
    for table in (
        "invoices",
        "credits",
        "observability_usage",
        "billing_rates",
        "plan_periods",
        "usage_intervals",
    ):
        op.drop_table(table)
