"""The database: engine per dialect, read/write sessions, the resourceVersion counter, migrations,
and the wake-up channel between replicas.

SQLite and PostgreSQL are kept in lockstep: on SQLite, write transactions start with
`BEGIN IMMEDIATE` (the one-writer lock PostgreSQL gets from row locks), reads use a snapshot.
On PostgreSQL every wait is bounded (connect, statement, pool checkout), so when the server goes
away callers get an error within `timeout` seconds instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

log = structlog.get_logger("kupe.db")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: replicas starting together serialise their migrations on it.
MIGRATION_LOCK_KEY = 0x4B555045
WRITE_OPTION = "kupe_write"
# NOTIFY channel on which committed writes tell every replica's reconciler to look for work.
WAKE_CHANNEL = "kupe_reconcile"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration shipped with this code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


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
            kwargs["connect_args"] = {"timeout": 30}
            kwargs.update(pool_size=pool_size, max_overflow=10, pool_timeout=30)
        elif self.dialect == "postgresql":
            # Bounded waits: connecting, every statement, and checking out of the pool.
            # pre_ping retires connections that died while the server was away, so the first
            # requests after it returns do not fail on them.
            kwargs["connect_args"] = {"timeout": timeout, "command_timeout": timeout}
            kwargs.update(
                pool_size=pool_size, max_overflow=10, pool_timeout=timeout, pool_pre_ping=True
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})

    @property
    def has_notify(self) -> bool:
        """Whether writes can wake other processes directly (PostgreSQL LISTEN/NOTIFY)."""
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing it does is committed."""
        async with AsyncSession(self.engine, expire_on_commit=False) as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        async with (
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    async def next_resource_version(self, session: AsyncSession) -> int:
        """Take the next value of the installation-wide resourceVersion counter."""
        if self.dialect == "postgresql":
            value = await session.scalar(text("SELECT nextval('resource_version_seq')"))
        else:
            value = await session.scalar(
                text("UPDATE resource_version_counter SET value = value + 1 RETURNING value")
            )
        assert value is not None
        return int(value)

    async def announce_work(self, session: AsyncSession) -> None:
        """Tell every replica's reconciler to look for due work once this transaction commits
        (PostgreSQL delivers NOTIFY only on commit, and never for a rolled-back one)."""
        if self.has_notify:
            await session.execute(text(f"NOTIFY {WAKE_CHANNEL}"))

    async def listen_for_work(
        self,
        on_wake: Callable[[], None],
        on_state: Callable[[bool], None],
        *,
        keepalive: float = 5.0,
    ) -> None:
        """Call `on_wake` for every announcement from any process, until cancelled.

        Holds one connection that LISTENs; when it is lost (server gone, network cut) it
        reconnects with backoff and calls `on_wake` once, since announcements made meanwhile
        were missed. `on_state` reports whether the listener is connected.
        """
        if not self.has_notify:
            return
        backoff = 0.5
        while True:
            try:
                await self._listen_once(on_wake, on_state, keepalive)
                backoff = 0.5
            except asyncio.CancelledError:
                on_state(False)
                raise
            except Exception as exc:
                log.warning("db.listener_lost", error=type(exc).__name__)
            on_state(False)
            await asyncio.sleep(backoff)
            backoff = min(10.0, backoff * 2)

    async def _listen_once(
        self, on_wake: Callable[[], None], on_state: Callable[[bool], None], keepalive: float
    ) -> None:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # the asyncpg connection
            lost = asyncio.Event()
            try:
                driver.add_termination_listener(lambda *_: lost.set())
                await driver.add_listener(WAKE_CHANNEL, lambda *_: on_wake())
                on_state(True)
                on_wake()
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), keepalive)
                    if not lost.is_set():
                        # A silent partition never terminates the connection: probe it.
                        await driver.fetchval("SELECT 1", timeout=self.timeout)
                raise ConnectionError("the listening connection was closed")
            finally:
                # Never hand a LISTENing (or broken) connection back to the pool.
                with contextlib.suppress(Exception):
                    await conn.invalidate()

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations; on PostgreSQL under an advisory lock so replicas do not race."""
        await self._migrate("upgrade", revision)

    async def downgrade(self, revision: str) -> None:
        """Roll migrations back to `revision` (used by migration tests)."""
        await self._migrate("downgrade", revision)

    async def _migrate(self, action: str, revision: str) -> None:
        engine = self._migration_engine()
        try:
            async with engine.connect() as conn:
                if self.dialect == "postgresql":
                    # Held until commit: a replica starting meanwhile waits here, then finds
                    # the schema current. (On SQLite, BEGIN IMMEDIATE serialises the same way.)
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
                await conn.run_sync(_run_alembic, action, revision)
                await conn.commit()
        finally:
            if engine is not self._write_engine:
                await engine.dispose()

    def _migration_engine(self) -> AsyncEngine:
        """Migrations may wait on the lock and run long DDL: no statement timeout for them."""
        if self.dialect != "postgresql":
            return self._write_engine
        return create_async_engine(
            self.url, poolclass=NullPool, connect_args={"timeout": self.timeout}
        )

    async def current_revision(self) -> str | None:
        """The migration the database is at, or None before the first."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _run_alembic(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config(connection)
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
