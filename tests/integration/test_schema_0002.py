"""Migration 0002 (API key resourceVersion, cluster index) applies, rolls back and re-applies on
both databases, and leaves the schema exactly as the models describe it."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kupe.server.db.engine import Database
from kupe.server.db.models import Base


async def test_0002_round_trip_matches_the_models(database_url: str) -> None:
    db = Database(database_url, pool_size=1)
    try:
        await db.downgrade("0001")
        assert await db.current_revision() == "0001"
        await db.upgrade()
        assert await db.current_revision() not in (None, "0001")

        def diff(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))

        async with db.engine.connect() as conn:
            changes = await conn.run_sync(diff)
        assert changes == []
    finally:
        await db.dispose()
