"""Schema migrations: one Alembic tree for SQLite and PostgreSQL, run under a lock so replicas
starting together migrate once."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: replicas starting together serialise their migrations on it.
MIGRATION_LOCK_KEY = 0x4B555045


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@cache
def head_revision() -> str | None:
    """The newest migration shipped with this code (the scripts are read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def migrate(
    engine: AsyncEngine, action: str, revision: str, *, connect_timeout: float
) -> None:
    """Upgrade or downgrade to `revision`; on PostgreSQL under an advisory lock."""
    postgresql = engine.dialect.name == "postgresql"
    # Migrations may wait on the lock and run long DDL: no statement timeout for them.
    connect_args = {"timeout": connect_timeout}
    runner = (
        create_async_engine(engine.url, poolclass=NullPool, connect_args=connect_args)
        if postgresql
        else engine
    )
    try:
        async with runner.connect() as conn:
            # One transaction for the whole run, begun before Alembic looks at the version
            # table, so a replica starting meanwhile waits, then finds the schema current:
            # PostgreSQL takes an advisory lock held until commit; on SQLite the engine given
            # begins with BEGIN IMMEDIATE, the one-writer lock. (Alembic sees a transaction
            # that is already open and runs every migration inside it.)
            if postgresql:
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
            else:
                await conn.execute(text("SELECT 1"))
            await conn.run_sync(_run_alembic, action, revision)
            await conn.commit()
    finally:
        if runner is not engine:
            await runner.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at, or None before the first."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


def _run_alembic(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config(connection)
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)
