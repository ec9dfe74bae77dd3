"""A tenant's webhooks and their delivery attempts, and the outbox events a hook is due."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update

from kupe.server.db.models import Event, Webhook, WebhookDelivery
from kupe.server.db.repositories.base import Repository, TenantScoped, rowcount


class WebhookRepository(TenantScoped):
    async def get(self, webhook_id: str) -> Webhook | None:
        stmt = (
            select(Webhook)
            .where(Webhook.tenant_id == self.tenant_id, Webhook.id == webhook_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def list(self, *, after: str | None = None, limit: int | None = None) -> list[Webhook]:
        stmt = select(Webhook).where(Webhook.tenant_id == self.tenant_id).order_by(Webhook.id)
        if after is not None:
            stmt = stmt.where(Webhook.id > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def count(self) -> int:
        stmt = select(func.count()).select_from(Webhook).where(Webhook.tenant_id == self.tenant_id)
        return int(await self.session.scalar(stmt) or 0)

    def add(self, hook: Webhook) -> None:
        self.session.add(hook)

    async def compare_and_set(
        self, webhook_id: str, expected_version: int, values: Mapping[str, Any]
    ) -> bool:
        """Write `values` only if the row still has `expected_version`."""
        result = await self.session.execute(
            update(Webhook)
            .where(
                Webhook.id == webhook_id,
                Webhook.tenant_id == self.tenant_id,
                Webhook.resource_version == expected_version,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def delete(self, webhook_id: str, expected_version: int) -> bool:
        await self.session.execute(
            delete(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id.in_(
                    select(Webhook.id).where(
                        Webhook.id == webhook_id, Webhook.tenant_id == self.tenant_id
                    )
                )
            )
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(
            delete(Webhook)
            .where(
                Webhook.id == webhook_id,
                Webhook.tenant_id == self.tenant_id,
                Webhook.resource_version == expected_version,
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def deliveries(
        self, webhook_id: str, *, before: int | None = None, limit: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        """A hook's attempts, newest first."""
        stmt = (
            select(WebhookDelivery)
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(Webhook.tenant_id == self.tenant_id, WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
        )
        if before is not None:
            stmt = stmt.where(WebhookDelivery.id < before)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())


class WebhookOutbox(Repository):
    """The reconciler's reads and writes for delivery (across tenants: each hook names its own)."""

    async def due_events(
        self,
        tenant_id: str,
        cursor: tuple[int, str, str],
        *,
        through: int | None,
        limit: int,
    ) -> list[Event]:
        """The tenant's events after `cursor` (resourceVersion, kind, object id), at most
        `through`, in outbox order."""
        stmt = select(Event).where(
            Event.tenant_id == tenant_id,
            tuple_(Event.resource_version, Event.kind, Event.object_id) > tuple_(*cursor),
        )
        if through is not None:
            stmt = stmt.where(Event.resource_version <= through)
        stmt = stmt.order_by(Event.resource_version, Event.kind, Event.object_id).limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def newest_version(self) -> int:
        return int(await self.session.scalar(select(func.max(Event.resource_version))) or 0)

    def add_delivery(self, delivery: WebhookDelivery) -> None:
        self.session.add(delivery)

    async def prune_deliveries(self, older_than: datetime, batch: int) -> int:
        oldest = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.attempted_at < older_than)
            .order_by(WebhookDelivery.id)
            .limit(batch)
        )
        result = await self.session.execute(
            delete(WebhookDelivery)
            .where(WebhookDelivery.id.in_(oldest))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)
