"""Self-test for the PostgreSQL harness in tests/support/postgres.py."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.support.postgres import PostgresHandle, plain_dsn, postgres_server


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresHandle]:
    with postgres_server() as handle:
        yield handle


async def _databases(pg: PostgresHandle) -> set[str]:
    conn = await asyncpg.connect(plain_dsn(pg.admin_url))
    try:
        return {row["datname"] for row in await conn.fetch("select datname from pg_database")}
    finally:
        await conn.close()


async def test_create_clone_and_drop(pg: PostgresHandle) -> None:
    url = pg.create_database("harness_a")
    assert f"{pg.host}:{pg.port}" in url
    conn = await asyncpg.connect(plain_dsn(url))
    try:
        assert "PostgreSQL" in await conn.fetchval("select version()")
        await conn.execute("create table item (id int primary key, name text not null)")
        await conn.execute("insert into item values (1, 'one'), (2, 'two')")
        assert await conn.fetchval("select count(*) from item") == 2
    finally:
        await conn.close()

    clone_url = pg.create_database("harness_b", template="harness_a")
    clone = await asyncpg.connect(plain_dsn(clone_url))
    try:
        assert await clone.fetchval("select name from item where id = 2") == "two"
    finally:
        # Still connected on purpose: dropping must disconnect us rather than fail.
        pg.drop_database("harness_b")
        clone.terminate()
    pg.drop_database("harness_a")

    names = {make.rsplit("/", 1)[1] for make in (url, clone_url)}
    assert not names & await _databases(pg)
