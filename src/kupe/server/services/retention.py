"""Retention of the audit log and of webhook delivery attempts: entries past their settings'
age are deleted in batches, one short transaction each, by every process that runs the
reconciler (as the outbox's retention does; deleting twice is harmless)."""

from __future__ import annotations

from datetime import timedelta

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.repositories.webhook import WebhookOutbox
from kupe.server.services.audit import AuditService
from kupe.server.services.periodic import Periodic, delete_in_batches

log = structlog.get_logger("kupe.retention")


class Retention(Periodic):
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
        super().__init__("kupe-audit-retention", self.prune, interval_seconds)
        self.db = db
        self.clock = clock
        self.audit = audit
        self.delivery_age = timedelta(days=delivery_days)
        self.batch = batch

    async def prune(self) -> tuple[int, int]:
        """Delete expired audit entries and delivery attempts; how many of each."""
        entries = await self.audit.prune()
        cutoff = self.clock.now() - self.delivery_age
        deliveries = await delete_in_batches(
            self.db,
            lambda session: WebhookOutbox(session).prune_deliveries(cutoff, self.batch),
            self.batch,
        )
        if entries or deliveries:
            log.info("retention.pruned", audit_entries=entries, webhook_deliveries=deliveries)
        return entries, deliveries
