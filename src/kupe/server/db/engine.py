"""The database: engine per dialect, read/write sessions and the resourceVersion counter.

Dialect specifics live beside it: `sqlite` (pragmas, BEGIN IMMEDIATE, the writer queue),
`migrations`, `wakeup` (the channel between replicas) and `hotread` (the poll path). On
PostgreSQL every wait is bounded (connect, statement, pool checkout), so when the server goes
away callers get an error within `timeout` seconds instead of hanging.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from kupe.server.db import migrate
from kupe.server.db.hotread import HotReads, hot_reads_for
from kupe.server.db.outbox import Outbox, note_versions
from kupe.server.db.sqlite import (
    SQLITE_BUSY_SECONDS,
    WRITE_OPTION,
    WriterQueue,
    install_sqlite_hooks,
)
from kupe.server.db.wakeup import WakeChannel

# PostgreSQL hands out sequence values in one order and commits in another, so a reader of the
# outbox could pass version 11 before version 10 commits. Every write transaction holds this
# advisory lock shared until it ends, taken before anything else it locks (so no transaction
# ever waits for it while holding a row lock: no deadlock with the reader); the outbox's reader
# takes it exclusively for one statement, and so sees exactly the versions whose transactions
# have all ended. (SQLite has one writer: versions commit in order.)
COMMIT_ORDER_LOCK = 0x6B757065
_COMMIT_ORDER_SHARED = text(f"SELECT pg_advisory_xact_lock_shared({COMMIT_ORDER_LOCK})")
_COMMIT_ORDER_EXCLUSIVE = text(f"SELECT pg_advisory_xact_lock({COMMIT_ORDER_LOCK})")


def _take_commit_order(_session: Session, _transaction: object, connection: Connection) -> None:
    connection.execute(_COMMIT_ORDER_SHARED)


class Database:
    """One engine and the ways to open sessions on it."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        timeout: float = 10.0,
        echo: bool = False,
    ) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self.timeout = timeout
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            # The busy timeout is about waiting for the one writer, not about outages.
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_SECONDS}
            kwargs.update(pool_size=pool_size, max_overflow=10, pool_timeout=30)
        elif self.dialect == "postgresql":
            # Bounded waits: connecting, every statement, and checking out of the pool. No
            # pre-ping (three round trips per checkout): a connection that died while the
            # server was away fails its request with 503 once, and that first disconnect
            # invalidates every older pooled connection, so the rest reconnect.
            kwargs["connect_args"] = {"timeout": timeout, "command_timeout": timeout}
            kwargs.update(pool_size=pool_size, max_overflow=10, pool_timeout=timeout)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._writers: WriterQueue | None = None
        if self.dialect == "sqlite":
            install_sqlite_hooks(self.engine)
            file = self.url.database if self.url.database not in (None, "", ":memory:") else None
            self._writers = WriterQueue(Path(file) if file else None)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self.wakeups = WakeChannel(self.engine, timeout=timeout)
        # Set by the runtime: write sessions record their changes' events (see outbox.py).
        self.outbox: Outbox | None = None
        # The driver-level path for the reads behind every poll (see hotread.py).
        self.hot: HotReads | None = hot_reads_for(
            self.url, timeout=timeout, busy_seconds=SQLITE_BUSY_SECONDS
        )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing it does is committed."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        async with (
            self._one_writer(),
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            if self.dialect == "postgresql":
                # The first statement of the transaction (see COMMIT_ORDER_LOCK).
                event.listen(session.sync_session, "after_begin", _take_commit_order, once=True)
            if self.outbox is not None:
                self.outbox.attach(session.sync_session)
            yield session

    @asynccontextmanager
    async def _one_writer(self) -> AsyncIterator[None]:
        if self._writers is None:
            yield
            return
        async with self._writers.turn(SQLITE_BUSY_SECONDS):
            yield

    async def next_resource_versions(self, session: AsyncSession, count: int) -> list[int]:
        """Take `count` values of the installation-wide counter at once (ascending)."""
        if count <= 0:
            return []
        if self.dialect == "postgresql":
            rows = await session.scalars(
                text("SELECT nextval('resource_version_seq') FROM generate_series(1, :n)"),
                {"n": count},
            )
            values = sorted(int(value) for value in rows)
        else:
            last = await session.scalar(
                text("UPDATE resource_version_counter SET value = value + :n RETURNING value"),
                {"n": count},
            )
            assert last is not None
            values = list(range(int(last) - count + 1, int(last) + 1))
        note_versions(session.sync_session, values)
        return values

    async def next_resource_version(self, session: AsyncSession) -> int:
        """Take the next value of the installation-wide resourceVersion counter."""
        if self.dialect == "postgresql":
            value = await session.scalar(text("SELECT nextval('resource_version_seq')"))
        else:
            value = await session.scalar(
                text("UPDATE resource_version_counter SET value = value + 1 RETURNING value")
            )
        assert value is not None
        note_versions(session.sync_session, (int(value),))
        return int(value)

    async def settled_versions(self, session: AsyncSession) -> None:
        """Wait, inside `session`'s transaction, until every transaction that took a
        resourceVersion so far has ended: the statements after it see no version commit out
        of order. (Only PostgreSQL needs it.)"""
        if self.dialect == "postgresql":
            await session.execute(_COMMIT_ORDER_EXCLUSIVE)

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations; on PostgreSQL under an advisory lock so replicas do not race.

        A database already at the head is left alone without taking the lock or loading
        Alembic's environment (every start of every replica asks)."""
        if revision == "head" and await self.current_revision() == migrate.head_revision():
            return
        await migrate.migrate(self._write_engine, "upgrade", revision, connect_timeout=self.timeout)

    async def downgrade(self, revision: str) -> None:
        """Roll migrations back to `revision` (used by migration tests)."""
        await migrate.migrate(
            self._write_engine, "downgrade", revision, connect_timeout=self.timeout
        )

    async def current_revision(self) -> str | None:
        """The migration the database is at, or None before the first."""
        return await migrate.current_revision(self.engine)

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.wakeups.close()
        if self.hot is not None:
            await self.hot.close()
        await self.engine.dispose()
        if self._writers is not None:
            self._writers.close()
