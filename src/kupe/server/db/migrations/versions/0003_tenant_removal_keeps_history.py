"""a deleted tenant's row stays (removed_at), and with it its clusters' rows for metering
history: tenant names are unique among live tenants only, and clusters no longer cascade

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kupe.server.db.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LIVE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", UTCDateTime(), nullable=True))
        batch_op.drop_constraint("uq_tenants_name", type_="unique")
        batch_op.create_index(
            "uq_tenants_live_name",
            ["name"],
            unique=True,
            sqlite_where=_LIVE,
            postgresql_where=_LIVE,
        )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clusters_tenant_id_tenants", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_clusters_tenant_id_tenants", "tenants", ["tenant_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clusters_tenant_id_tenants", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_clusters_tenant_id_tenants", "tenants", ["tenant_id"], ["id"], ondelete="CASCADE"
        )
    # Removed tenants (and their history) cannot be represented before this revision.
    op.execute(
        "DELETE FROM clusters WHERE tenant_id IN "
        "(SELECT id FROM tenants WHERE removed_at IS NOT NULL)"
    )
    op.execute("DELETE FROM tenants WHERE removed_at IS NOT NULL")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_index("uq_tenants_live_name", sqlite_where=_LIVE, postgresql_where=_LIVE)
        batch_op.create_unique_constraint("uq_tenants_name", ["name"])
        batch_op.drop_column("removed_at")
