"""Fixtures: every database-touching test runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import gc
import itertools
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kupe.server.db.engine import Database
from kupe.server.logging import configure_logging
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


@pytest.fixture(scope="session", autouse=True)
def server_logging(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Apps run in-process log as `kupe serve` does (JSON lines, info and up), not through
    structlog's development defaults, which render every logged exception with rich (seconds
    of CPU for one traceback) and print debug lines."""
    configure_logging(test_settings(tmp_path_factory.mktemp("logging"), "sqlite://"))


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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built (modules, fixtures, the test items: long-lived) out of the
    garbage collector's sight, as `kupe serve` does after starting: each full collection
    during the run would walk all of it again (measured: 40 % less time in full
    collections)."""
    gc.collect()
    gc.freeze()


# `make test` hands files to workers in the order of this list (--no-loadscope-reorder;
# xdist's default order is by number of tests, which put the long one-test files last and
# left one worker running them alone at the end). Files that wait on processes of their own
# (servers, clusters, a browser) alternate with files that keep the CPU busy in-process, and
# the many short unit tests go last, to fill in while the long files finish.
PROCESS_DIRS = ("e2e", "local", "console")
IN_PROCESS_DIRS = ("integration", "compat")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    files: dict[Path, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)

    def under(dirs: tuple[str, ...]) -> list[list[pytest.Item]]:
        """The files in `dirs`, directory by directory in that order."""
        top = {path: path.relative_to(tests_dir).parts[0] for path in files}
        return [files[path] for place in dirs for path in files if top[path] == place]

    waiting, busy = under(PROCESS_DIRS), under(IN_PROCESS_DIRS)
    pairs = itertools.zip_longest(waiting, busy)
    alternating = [group for pair in pairs for group in pair if group]
    placed = {id(group) for group in alternating}
    rest = [group for group in files.values() if id(group) not in placed]
    items[:] = [item for group in (*alternating, *rest) for item in group]
