"""api keys carry a resourceVersion (the ETag of a created key); clusters are indexed by tenant
and resourceVersion (the tenant's version includes its clusters' newest)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "resource_version", sa.BigInteger(), nullable=False, server_default=sa.text("0")
            )
        )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clusters_tenant_version", ["tenant_id", "resource_version"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_index("ix_clusters_tenant_version")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("resource_version")
