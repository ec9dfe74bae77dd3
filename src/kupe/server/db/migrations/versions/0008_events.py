"""events: the outbox of changes, keyed by resourceVersion (watch, timeline, webhooks)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kupe.server.db.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The tables whose rows the outbox finds by the resourceVersions a transaction took.
_VERSIONED = ("clusters", "managed_secrets", "api_keys", "tenants")
# On PostgreSQL every transaction that wrote events wakes the watchers of every replica at its
# commit (NOTIFY is transactional: nothing is announced for a rollback).
EVENTS_CHANNEL = "kupe_events"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("resource_version", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("object_id", sa.String(length=340), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=340), nullable=False),
        sa.Column("type", sa.String(length=10), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=340), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("resource_version", "kind", "object_id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_object", "events", ["kind", "object_id", "resource_version"])
    op.create_index(op.f("ix_events_time"), "events", ["time"])
    horizon = op.create_table(
        "event_horizon",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_horizon")),
    )
    assert horizon is not None
    op.bulk_insert(horizon, [{"id": "outbox", "pruned_through": 0}])
    for table in _VERSIONED:
        op.create_index(f"ix_{table}_resource_version", table, ["resource_version"])
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION kupe_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NOTIFY {EVENTS_CHANNEL};
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER events_notify AFTER INSERT ON events "
            "FOR EACH STATEMENT EXECUTE FUNCTION kupe_events_notify()"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_notify ON events")
        op.execute("DROP FUNCTION IF EXISTS kupe_events_notify()")
    for table in _VERSIONED:
        op.drop_index(f"ix_{table}_resource_version", table_name=table)
    op.drop_table("event_horizon")
    op.drop_index(op.f("ix_events_time"), table_name="events")
    op.drop_index("ix_events_object", table_name="events")
    op.drop_table("events")
