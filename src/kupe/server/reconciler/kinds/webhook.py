"""The webhook kind: deliver each event a hook subscribed to, in outbox order, signed.

One hook is one leased row, so across replicas one worker at a time delivers to it, each
attempt once, the HTTP call outside any transaction; the attempts and the hook's cursor are
written together with the outcome, only while the lease holds. A failed delivery (not 2xx, or
no answer in time) is retried with capped, jittered exponential backoff and holds back the
hook's later events (they arrive in order); after `give_up_seconds` of failures the hook is
disabled with a reason. An idle hook looks for new events every `poll_seconds`.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult
from kupe.server.db.models import Event, WebhookDelivery
from kupe.server.db.repositories.webhook import WebhookOutbox
from kupe.server.reconciler.kind import LeaseCheck, LeaseLost, Outcome, Result, always_held
from kupe.server.reconciler.kinds.webhook_item import (
    WEBHOOK_LEASES,
    Cursor,
    DeliveryRecord,
    Progress,
    WebhookItem,
)
from kupe.server.webhooks.delivery import Attempt, Deliverer
from kupe.server.webhooks.events import HookEvent, subscribed, webhook_type
from kupe.server.webhooks.sealing import SealingError, SecretSealer
from kupe.server.webhooks.settings import WebhookSettings

log = structlog.get_logger("kupe.webhooks")
WebhookOutcome = Outcome[Progress]
# Events read per look: skipped ones (other types, other hooks' interests) cost no delivery.
READ_AHEAD = 200


class WebhookKind:
    """Webhooks, fed from the events outbox."""

    name = "webhook"
    leases = WEBHOOK_LEASES

    def __init__(
        self,
        db: Database,
        sealer: SecretSealer,
        clock: Clock,
        settings: WebhookSettings,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.clock = clock
        self.settings = settings
        self.deliverer = Deliverer(
            timeout=settings.timeout_seconds, allow_private=settings.allow_private
        )
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._horizon: asyncio.Task[int | None] | None = None

    async def reconcile(
        self, item: WebhookItem, check_lease: LeaseCheck = always_held
    ) -> WebhookOutcome:
        try:
            secret = self.sealer.open(item.tenant_id, item.id, item.sealed_secret)
        except SealingError:
            reason = "The signing secret does not open under this installation's sealing key"
            return self._stop(item, item.cursor, (), reason)
        through = await self._settled()
        async with self.db.read() as session:
            events = await WebhookOutbox(session).due_events(
                item.tenant_id, item.cursor, through=through, limit=READ_AHEAD
            )
        if not events and item.tenant_removed:
            # Its last event (tenant.deleted, if subscribed) is delivered: nothing more comes.
            return self._stop(item, item.cursor, (), "The tenant was deleted")
        cursor: Cursor = item.cursor
        records: list[DeliveryRecord] = []
        for event in events:
            event_type = webhook_type(event.kind, event.type, event.reason)
            if event_type is None or not subscribed(item.events, event_type):
                cursor = (event.resource_version, event.kind, event.object_id)
                continue
            if len(records) >= self.settings.batch:
                return self._healthy(cursor, records, again=0.0)
            try:
                check_lease()
            except LeaseLost:
                # What was delivered is written if the lease still holds in the database.
                held = Progress(cursor, item.failing_since, item.failure_count, tuple(records))
                return Outcome(held, 0.0) if not records else self._healthy(cursor, records)
            hook_event = _hook_event(item, event, event_type)
            now = self.clock.now()
            attempt = await self.deliverer.send(
                item.url, secret, hook_event.id, hook_event.body(), int(now.timestamp())
            )
            # The first event of a pass is the one that may have failed before.
            head = not records
            number = item.failure_count + 1 if head else 1
            if attempt.delivered:
                records.append(_record(hook_event, number, now, attempt, None))
                cursor = (event.resource_version, event.kind, event.object_id)
                continue
            failing_since = (item.failing_since if head else None) or now
            return self._failed(
                item, cursor, records, hook_event, number, attempt, now, failing_since
            )
        again = 0.0 if len(events) >= READ_AHEAD else self.settings.poll_seconds
        return self._healthy(cursor, records, again=again)

    def _healthy(
        self, cursor: Cursor, records: list[DeliveryRecord], *, again: float = 0.0
    ) -> WebhookOutcome:
        """Everything due was delivered (or nothing was due)."""
        progress = Progress(cursor, None, 0, tuple(records))
        return Outcome(progress, again * self._rng.uniform(0.8, 1.0))

    def _failed(
        self,
        item: WebhookItem,
        cursor: Cursor,
        records: list[DeliveryRecord],
        event: HookEvent,
        number: int,
        attempt: Attempt,
        now: datetime,
        failing_since: datetime,
    ) -> WebhookOutcome:
        error = attempt.error or f"HTTP {attempt.status_code}"
        if (now - failing_since).total_seconds() >= self.settings.give_up_seconds:
            records.append(_record(event, number, now, attempt, None))
            hours = self.settings.give_up_seconds / 3600
            reason = f"Deliveries failed for {hours:g} h; the last: {error}"
            return self._stop(item, cursor, tuple(records), reason, failing_since, number)
        delay = self.backoff(number)
        records.append(_record(event, number, now, attempt, now + timedelta(seconds=delay)))
        progress = Progress(cursor, failing_since, number, tuple(records))
        return Outcome(progress, delay, result=Result.RETRY, error=error)

    def backoff(self, failures: int) -> float:
        """Exponential from `retry_base_seconds`, capped at `retry_max_seconds`, jittered."""
        base = self.settings.retry_base_seconds * 2 ** min(failures - 1, 30)
        capped = min(self.settings.retry_max_seconds, base)
        return float(capped * self._rng.uniform(0.5, 1.0))

    def _stop(
        self,
        item: WebhookItem,
        cursor: Cursor,
        records: tuple[DeliveryRecord, ...],
        reason: str,
        failing_since: datetime | None = None,
        failures: int | None = None,
    ) -> WebhookOutcome:
        progress = Progress(
            cursor,
            failing_since or item.failing_since,
            item.failure_count if failures is None else failures,
            records,
            disabled_reason=reason,
        )
        return Outcome(progress, self.settings.poll_seconds, result=Result.FAILED, error=reason)

    async def _settled(self) -> int | None:
        """The newest resourceVersion below which no transaction can still commit (PostgreSQL
        commits versions out of order); one look serves every pass running at the time."""
        if self.db.dialect != "postgresql":
            return None
        if self._horizon is None or self._horizon.done():
            self._horizon = asyncio.ensure_future(self._look())
        return await asyncio.shield(self._horizon)

    async def _look(self) -> int | None:
        async with self.db.read() as session:
            await self.db.settled_versions(session)
            return await WebhookOutbox(session).newest_version()

    def changes(self, item: WebhookItem, outcome: WebhookOutcome) -> bool:
        return outcome.status.changes(item)

    async def write(
        self,
        session: AsyncSession,
        item: WebhookItem,
        outcome: WebhookOutcome,
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        values = outcome.status.columns(now)
        if resource_version is not None:
            values["resource_version"] = resource_version
        result = await self.leases.finish(session, item, values=values, next_at=next_at, now=now)
        if result is FinishResult.APPLIED:
            outbox = WebhookOutbox(session)
            for record in outcome.status.deliveries:
                outbox.add_delivery(
                    WebhookDelivery(
                        webhook_id=item.id,
                        event_id=record.event_id,
                        event_type=record.event_type,
                        attempt=record.attempt,
                        attempted_at=record.attempted_at,
                        status_code=record.status_code,
                        error=record.error,
                        duration_ms=record.duration_ms,
                        delivered=record.delivered,
                        next_retry_at=record.next_retry_at,
                    )
                )
        return result

    def report(self, item: WebhookItem, outcome: WebhookOutcome, result: FinishResult) -> None:
        if result is not FinishResult.APPLIED:
            return
        progress = outcome.status
        delivered = sum(1 for record in progress.deliveries if record.delivered)
        if delivered:
            log.info("webhook.delivered", tenant=item.tenant, webhook=item.id, count=delivered)
        if progress.disabled_reason:
            log.warning(
                "webhook.disabled",
                tenant=item.tenant,
                webhook=item.id,
                reason=progress.disabled_reason,
            )
        elif outcome.error:
            log.info(
                "webhook.delivery_failed",
                tenant=item.tenant,
                webhook=item.id,
                attempts=progress.failure_count,
                error=outcome.error,
            )

    async def aclose(self) -> None:
        await self.deliverer.aclose()


def _hook_event(item: WebhookItem, event: Event, event_type: str) -> HookEvent:
    return HookEvent(
        resource_version=event.resource_version,
        kind=event.kind,
        object_id=event.object_id,
        type=event_type,
        tenant=item.tenant,
        object=event.object,
        actor=event.actor,
        time=event.time,
        request_id=event.request_id,
        reason=event.reason,
        message=event.message,
    )


def _record(
    event: HookEvent, number: int, now: datetime, attempt: Attempt, retry_at: datetime | None
) -> DeliveryRecord:
    return DeliveryRecord(
        event_id=event.id,
        event_type=event.type,
        attempt=number,
        attempted_at=now,
        status_code=attempt.status_code,
        error=attempt.error,
        duration_ms=attempt.duration_ms,
        delivered=attempt.delivered,
        next_retry_at=retry_at,
    )
