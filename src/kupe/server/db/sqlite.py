"""SQLite's specifics: pragmas and BEGIN IMMEDIATE on every connection, and the writer queue.

SQLite and PostgreSQL are kept in lockstep: on SQLite, write transactions start with
`BEGIN IMMEDIATE` (the one-writer lock PostgreSQL gets from row locks), reads use a snapshot.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine

from kupe.core.sqlite_wal import enable_wal

WRITE_OPTION = "kupe_write"
SQLITE_BUSY_SECONDS = 30


class WriterQueue:
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


def install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE can be issued below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
