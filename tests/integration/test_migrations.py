"""The Alembic tree on SQLite and PostgreSQL: up, down and up again; no drift between the
models and the migrations; and replicas migrating one database at the same moment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from kupe.server.db.engine import Database
from kupe.server.db.migrate import alembic_config, head_revision
from kupe.server.db.models import Base
from tests.support.postgres import PostgresHandle

KUPE = [sys.executable, "-c", "from kupe.cli.main import main; main()"]
TABLES = {
    "tenants",
    "members",
    "api_keys",
    "clusters",
    "idempotency_records",
    "alertmanager_configs",
    "alertmanager_receivers",
    "usage_intervals",
    "plan_periods",
    "billing_rates",
    "observability_usage",
    "credits",
    "invoices",
    "audit_entries",
    "webhooks",
    "webhook_deliveries",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even the migrations' version table."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    handle: PostgresHandle = request.getfixturevalue("postgres")
    name = f"m_{uuid.uuid4().hex[:16]}"
    url = handle.create_database(name)
    yield url
    handle.drop_database(name)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def schema(db: Database) -> dict[str, Any]:
    def inspect_sync(conn: Connection) -> dict[str, Any]:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names())
        sequences = set(inspector.get_sequence_names()) if conn.dialect.name != "sqlite" else set()
        return {"tables": tables, "sequences": sequences}

    async with db.engine.connect() as conn:
        return await conn.run_sync(inspect_sync)


async def drift(db: Database) -> list[Any]:
    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    db = Database(empty_database_url, pool_size=2)
    try:
        assert await db.current_revision() is None
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        migrated = await schema(db)
        assert migrated["tables"] >= TABLES | {"alembic_version"}
        if db.dialect == "postgresql":
            assert "resource_version_seq" in migrated["sequences"]

        await db.downgrade("base")
        assert await db.current_revision() is None
        emptied = await schema(db)
        assert emptied["tables"] <= {"alembic_version"}
        assert emptied["sequences"] == set()

        await db.upgrade()
        assert await db.current_revision() == head_revision()
        assert await schema(db) == migrated
        assert await drift(db) == []
    finally:
        await db.dispose()


async def test_every_revision_steps_down_and_up_again(empty_database_url: str) -> None:
    db = Database(empty_database_url, pool_size=2)
    steps = revisions()
    try:
        for revision in steps:
            await db.upgrade(revision)
            assert await db.current_revision() == revision
        for previous in reversed(["base", *steps[:-1]]):
            await db.downgrade(previous)
            assert await db.current_revision() == (None if previous == "base" else previous)
        await db.upgrade()
        assert await drift(db) == []
    finally:
        await db.dispose()


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    db = Database(database_url, pool_size=2)
    try:
        assert await drift(db) == []
    finally:
        await db.dispose()


async def test_resource_version_counter_is_shared_by_connections(database_url: str) -> None:
    """Values come from the database (a sequence / a counter row), never from one process's
    memory, so concurrent writers anywhere get distinct, growing versions."""
    first, second = Database(database_url), Database(database_url)

    async def take(db: Database) -> int:
        async with db.write() as session:
            return await db.next_resource_version(session)

    try:
        values = await asyncio.gather(*(take(db) for db in (first, second) for _ in range(20)))
        assert len(set(values)) == 40
        assert await take(first) > max(values)
    finally:
        await first.dispose()
        await second.dispose()


async def test_replicas_migrating_at_once_do_not_race(empty_database_url: str) -> None:
    replicas = [Database(empty_database_url, pool_size=1) for _ in range(4)]
    try:
        await asyncio.gather(*(db.upgrade() for db in replicas))
        assert {await db.current_revision() for db in replicas} == {head_revision()}
        async with replicas[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert [row[0] for row in versions] == [head_revision()]
    finally:
        for db in replicas:
            await db.dispose()


def test_kupe_db_upgrade_processes_started_together(empty_database_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KUPE_")},
        "KUPE_DATABASE_URL": empty_database_url,
    }
    processes = [
        subprocess.Popen(
            [*KUPE, "db", "upgrade"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(3)
    ]
    try:
        outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert all(f"database at revision {head_revision()}" in out for out in outputs), outputs
