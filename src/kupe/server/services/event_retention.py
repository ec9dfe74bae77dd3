"""Retention of the outbox: events older than KUPE_EVENTS__RETENTION_DAYS are deleted in
batches, one short transaction each, by every process that runs the reconciler (deleting
twice is harmless, so replicas need no coordination)."""

from __future__ import annotations

from datetime import timedelta

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.repositories.event import EventRepository
from kupe.server.event_settings import EventsSettings
from kupe.server.services.periodic import Periodic, delete_in_batches

log = structlog.get_logger("kupe.events")


class EventRetention(Periodic):
    def __init__(self, db: Database, clock: Clock, settings: EventsSettings) -> None:
        super().__init__(
            "kupe-event-retention", self.prune_expired, settings.prune_interval_seconds
        )
        self.db = db
        self.clock = clock
        self.settings = settings

    async def prune_expired(self) -> int:
        """Delete every expired event, a batch per transaction; how many."""
        before = self.clock.now() - timedelta(days=self.settings.retention_days)
        batch = self.settings.prune_batch
        total = await delete_in_batches(
            self.db, lambda session: EventRepository(session).prune(before, batch), batch
        )
        if total:
            log.info("events.pruned", count=total)
        return total
