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
import fcntl
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
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

from kupe.server.db.hotread import HotReads, hot_reads_for

log = structlog.get_logger("kupe.db")

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed 64-bit number: replicas starting together serialise their migrations on it.
MIGRATION_LOCK_KEY = 0x4B555045
WRITE_OPTION = "kupe_write"
SQLITE_BUSY_SECONDS = 30
# NOTIFY channel on which committed writes tell every replica's reconciler to look for work.
WAKE_CHANNEL = "kupe_reconcile"
ANNOUNCE_LINGER_SECONDS = 0.01


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
        if self.dialect == "sqlite":
            _install_sqlite_hooks(self.engine)
        self._write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._announcer: asyncio.Task[None] | None = None
        self._announce_again = False
        self._writers: _WriterQueue | None = None
        # The driver-level path for the reads behind every poll (see hotread.py).
        self.hot: HotReads | None = hot_reads_for(
            self.url, timeout=timeout, busy_seconds=SQLITE_BUSY_SECONDS
        )
        if self.dialect == "sqlite":
            file = self.url.database if self.url.database not in (None, "", ":memory:") else None
            self._writers = _WriterQueue(Path(file) if file else None)

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
            self._one_writer(),
            AsyncSession(self._write_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @asynccontextmanager
    async def _one_writer(self) -> AsyncIterator[None]:
        if self._writers is None:
            yield
            return
        async with self._writers.turn(SQLITE_BUSY_SECONDS):
            yield

    async def next_resource_versions(self, session: AsyncSession, count: int) -> list[int]:
        """Take `count` values of the counter at once (ascending)."""
        if count <= 0:
            return []
        if self.dialect == "postgresql":
            rows = await session.scalars(
                text("SELECT nextval('resource_version_seq') FROM generate_series(1, :n)"),
                {"n": count},
            )
            return sorted(int(value) for value in rows)
        last = await session.scalar(
            text("UPDATE resource_version_counter SET value = value + :n RETURNING value"),
            {"n": count},
        )
        assert last is not None
        return list(range(int(last) - count + 1, int(last) + 1))

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

    def announce_work(self) -> None:
        """After a commit: tell every replica's reconciler to look for due work.

        Sent from a background task on a connection of its own, so it adds nothing to the
        request (or to the locks its transaction held); announcements made while one is on
        its way are coalesced into the next. If it is lost (the process dies first, the
        database is away), the reconcilers' polling finds the work a little later.
        """
        if not self.has_notify:
            return
        self._announce_again = True
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(
                self._announce(), name="kupe-announce-work"
            )

    async def _announce(self) -> None:
        await asyncio.sleep(ANNOUNCE_LINGER_SECONDS)  # a burst of commits, one announcement
        while self._announce_again:
            self._announce_again = False
            try:
                async with self._autocommit_engine.connect() as conn:
                    await conn.execute(text(f"NOTIFY {WAKE_CHANNEL}"))
            except Exception as exc:
                log.warning("db.announce_failed", error=type(exc).__name__)
                return

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
                # One transaction for the whole run, begun before Alembic looks at the version
                # table, so a replica starting meanwhile waits, then finds the schema current:
                # PostgreSQL takes an advisory lock held until commit; on SQLite this begins
                # with BEGIN IMMEDIATE, the one-writer lock. (Alembic sees a transaction that
                # is already open and runs every migration inside it.)
                if self.dialect == "postgresql":
                    await conn.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"))
                else:
                    await conn.execute(text("SELECT 1"))
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
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._announcer
        if self.hot is not None:
            await self.hot.close()
        await self.engine.dispose()
        if self._writers is not None:
            self._writers.close()


class _WriterQueue:
    """SQLite's one-writer lock, queued for fairly instead of polled for.

    Writers wait in SQLite's busy handler otherwise, which sleeps with growing backoff while
    the lock sits free: under contention throughput collapses and one process can starve
    another. So a writer first waits its turn among this process's writers (an asyncio lock),
    then among processes, for an flock on a file next to the database (waited for in the
    kernel, in a thread), and only then issues BEGIN IMMEDIATE, which finds the lock free.
    Both only put writers in order: SQLite's own lock still guarantees there is one writer.
    """

    def __init__(self, database: Path | None) -> None:
        self._local = asyncio.Lock()  # FIFO
        self._path = database.with_name(database.name + ".write-lock") if database else None
        self._fd: int | None = None
        self._waiter: ThreadPoolExecutor | None = None

    @asynccontextmanager
    async def turn(self, patience: float) -> AsyncIterator[None]:
        """Hold the write lock for the block; TimeoutError after `patience` seconds."""
        async with asyncio.timeout(patience):
            await self._local.acquire()
        try:
            fd = await self._lock_file(patience)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._local.release()

    async def _lock_file(self, patience: float) -> int | None:
        if self._path is None:
            return None
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kupe-sqlite")
        fd = self._fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        waiting = asyncio.get_running_loop().run_in_executor(
            self._waiter, fcntl.flock, fd, fcntl.LOCK_EX
        )
        try:
            await asyncio.wait_for(asyncio.shield(waiting), patience)
        except BaseException:
            # We stop waiting, but the thread may still get the lock later: give it back then.
            def give_back(done: asyncio.Future[None]) -> None:
                if not done.cancelled() and done.exception() is None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

            waiting.add_done_callback(give_back)
            raise
        return fd

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.shutdown(wait=False)
            self._waiter = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        # Switching a new database to WAL needs an exclusive lock and SQLite may answer "locked"
        # at once, without its busy handler, while other processes open it too: retry briefly.
        for attempt in range(200):
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if attempt == 199:
                    raise
                time.sleep(0.05)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
