"""managed secrets: definitions synced from OpenBao into clusters (values never stored)

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from kupe.server.db.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "managed_secrets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("secret_path", sa.String(length=512), nullable=False),
        sa.Column("sync", _JSON, nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("observed_generation", sa.BigInteger(), nullable=False),
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("deletion_requested_at", UTCDateTime(), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("conditions", _JSON, nullable=False),
        sa.Column("sync_statuses", _JSON, nullable=False),
        sa.Column("applied", _JSON, nullable=False),
        sa.Column("next_reconcile_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_managed_secrets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_managed_secrets")),
    )
    with op.batch_alter_table("managed_secrets", schema=None) as batch_op:
        batch_op.create_index(
            "uq_managed_secrets_live_name",
            ["tenant_id", "name"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )
        batch_op.create_index(
            "ix_managed_secrets_due",
            ["next_reconcile_at"],
            unique=False,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )


def downgrade() -> None:
    with op.batch_alter_table("managed_secrets", schema=None) as batch_op:
        batch_op.drop_index("ix_managed_secrets_due", sqlite_where=_LIVE, postgresql_where=_LIVE)
        batch_op.drop_index(
            "uq_managed_secrets_live_name", sqlite_where=_LIVE, postgresql_where=_LIVE
        )
    op.drop_table("managed_secrets")
