"""alerting: tenants' Alertmanager receivers, routes and global section (credentials sealed)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from kupe.server.db.types import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "alertmanager_configs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("routes", _JSON, nullable=True),
        sa.Column("routes_version", sa.BigInteger(), nullable=False),
        sa.Column("global_sealed", sa.Text(), nullable=True),
        sa.Column("global_version", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("observed_generation", sa.BigInteger(), nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("pushed_at", UTCDateTime(), nullable=True),
        sa.Column("push_error", sa.Text(), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("next_reconcile_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_alertmanager_configs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alertmanager_configs")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_alertmanager_configs_tenant_id")),
    )
    with op.batch_alter_table("alertmanager_configs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alertmanager_configs_due",
            ["next_reconcile_at"],
            unique=False,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )
    op.create_table(
        "alertmanager_receivers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_alertmanager_receivers_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alertmanager_receivers")),
    )
    with op.batch_alter_table("alertmanager_receivers", schema=None) as batch_op:
        batch_op.create_index("uq_alertmanager_receivers_name", ["tenant_id", "name"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("alertmanager_receivers", schema=None) as batch_op:
        batch_op.drop_index("uq_alertmanager_receivers_name")
    op.drop_table("alertmanager_receivers")
    with op.batch_alter_table("alertmanager_configs", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_alertmanager_configs_due", sqlite_where=_LIVE, postgresql_where=_LIVE
        )
    op.drop_table("alertmanager_configs")
