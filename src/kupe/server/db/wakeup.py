"""The wake-up channel between replicas: committed writes tell every reconciler to look for work
(PostgreSQL LISTEN/NOTIFY); polling remains the fallback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("kupe.db")

# NOTIFY channel on which committed writes tell every replica's reconciler to look for work.
WAKE_CHANNEL = "kupe_reconcile"
ANNOUNCE_LINGER_SECONDS = 0.01


class WakeChannel:
    """Announcements of new work, and a listener for them, on one database."""

    def __init__(self, engine: AsyncEngine, *, timeout: float) -> None:
        self.engine = engine
        self.timeout = timeout
        self.available = engine.dialect.name == "postgresql"
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._announcer: asyncio.Task[None] | None = None
        self._again = False

    def announce(self) -> None:
        """After a commit: tell every replica's reconciler to look for due work.

        Sent from a background task on a connection of its own, so it adds nothing to the
        request (or to the locks its transaction held); announcements made while one is on
        its way are coalesced into the next. If it is lost (the process dies first, the
        database is away), the reconcilers' polling finds the work a little later.
        """
        if not self.available:
            return
        self._again = True
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(
                self._announce(), name="kupe-announce-work"
            )

    async def _announce(self) -> None:
        await asyncio.sleep(ANNOUNCE_LINGER_SECONDS)  # a burst of commits, one announcement
        while self._again:
            self._again = False
            try:
                async with self._autocommit.connect() as conn:
                    await conn.execute(text(f"NOTIFY {WAKE_CHANNEL}"))
            except Exception as exc:
                log.warning("db.announce_failed", error=type(exc).__name__)
                return

    async def listen(
        self,
        on_wake: Callable[[], None],
        on_state: Callable[[bool], None],
        *,
        keepalive: float = 5.0,
        channel: str = WAKE_CHANNEL,
    ) -> None:
        """Call `on_wake` for every announcement from any process (on `channel`), until
        cancelled.

        Holds one connection that LISTENs; when it is lost (server gone, network cut) it
        reconnects with backoff and calls `on_wake` once, since announcements made meanwhile
        were missed. `on_state` reports whether the listener is connected.
        """
        if not self.available:
            return
        backoff = 0.5
        while True:
            try:
                await self._listen_once(on_wake, on_state, keepalive, channel)
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
        self,
        on_wake: Callable[[], None],
        on_state: Callable[[bool], None],
        keepalive: float,
        channel: str,
    ) -> None:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection  # the asyncpg connection
            lost = asyncio.Event()
            try:
                driver.add_termination_listener(lambda *_: lost.set())
                await driver.add_listener(channel, lambda *_: on_wake())
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

    async def close(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._announcer
