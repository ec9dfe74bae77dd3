"""Retention of the outbox: events older than KUPE_EVENTS__RETENTION_DAYS are deleted in
batches, one short transaction each, by every process that runs the reconciler (deleting
twice is harmless, so replicas need no coordination)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.repositories.event import EventRepository
from kupe.server.event_settings import EventsSettings

log = structlog.get_logger("kupe.events")


class EventRetention:
    def __init__(self, db: Database, clock: Clock, settings: EventsSettings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self._task: asyncio.Task[None] | None = None

    async def prune_expired(self) -> int:
        """Delete every expired event, a batch per transaction; how many."""
        before = self.clock.now() - timedelta(days=self.settings.retention_days)
        total = 0
        while True:
            async with self.db.write() as session:
                pruned = await EventRepository(session).prune(before, self.settings.prune_batch)
            total += pruned
            if pruned < self.settings.prune_batch:
                break
        if total:
            log.info("events.pruned", count=total)
        return total

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="kupe-event-retention"
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_expired()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("events.prune_failed", error=type(exc).__name__)
            await asyncio.sleep(self.settings.prune_interval_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
