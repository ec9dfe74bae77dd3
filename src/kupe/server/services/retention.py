"""Retention of the audit log and of webhook delivery attempts: entries past their settings'
age are deleted in batches, one short transaction each, by every process that runs the
reconciler (as the outbox's retention does; deleting twice is harmless)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.repositories.webhook import WebhookOutbox
from kupe.server.services.audit import AuditService

log = structlog.get_logger("kupe.retention")


class Retention:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audit: AuditService,
        *,
        delivery_days: float,
        batch: int,
        interval_seconds: float,
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self.delivery_age = timedelta(days=delivery_days)
        self.batch = batch
        self.interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def prune(self) -> tuple[int, int]:
        """Delete expired audit entries and delivery attempts; how many of each."""
        entries = await self.audit.prune()
        cutoff = self.clock.now() - self.delivery_age
        deliveries = 0
        while True:
            async with self.db.write() as session:
                deleted = await WebhookOutbox(session).prune_deliveries(cutoff, self.batch)
            deliveries += deleted
            if deleted < self.batch:
                break
        if entries or deliveries:
            log.info("retention.pruned", audit_entries=entries, webhook_deliveries=deliveries)
        return entries, deliveries

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="kupe-audit-retention"
            )

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("retention.prune_failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
