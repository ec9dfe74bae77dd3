"""Fixtures: every database-touching test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kupe.server.db.engine import Database
from tests.support.harness import Kupe, running_kupe, test_settings
from tests.support.openbao import OpenBaoServer, openbao_server
from tests.support.postgres import PostgresHandle, postgres_server

TEMPLATE_DB = "kupe_template"
# Property tests check rules, not speed: on a loaded 2-core machine an example can take longer
# than hypothesis's default 200 ms deadline, which would fail a correct test.
settings.register_profile("kupe", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kupe")


def _migrate(url: str) -> None:
    async def main() -> None:
        db = Database(url, pool_size=1)
        try:
            await db.upgrade()
        finally:
            await db.dispose()

    asyncio.run(main())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresHandle]:
    """A real PostgreSQL for the whole run, with a migrated template database."""
    with postgres_server() as handle:
        _migrate(handle.create_database(TEMPLATE_DB))
        yield handle


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "kupe.db"
    _migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A fresh, migrated database of each kind for one test."""
    if request.param == "sqlite":
        target = tmp_path / "kupe.db"
        shutil.copyfile(sqlite_template, target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    handle: PostgresHandle = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = handle.create_database(name, template=TEMPLATE_DB)
    yield url
    handle.drop_database(name)


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    async with running_kupe(test_settings(tmp_path, database_url)) as app:
        yield app


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """A real OpenBao (initialised, unsealed, storage kept across restarts) for the whole run."""
    with openbao_server() as server:
        yield server
