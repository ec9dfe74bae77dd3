"""A webhook as the delivering reconciler reads it, the statements that lease and load it, and
the progress one pass made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select

from kupe.server.db.leases import Leases, Loader
from kupe.server.db.models import Tenant, Webhook

Cursor = tuple[int, str, str]  # the last event handled: (resourceVersion, kind, object id)


@dataclass(frozen=True)
class WebhookItem:
    id: str
    tenant_id: str
    tenant: str
    url: str
    events: tuple[str, ...]
    sealed_secret: str
    cursor: Cursor
    failing_since: datetime | None
    failure_count: int
    resource_version: int
    lease: str
    tenant_removed: bool = False


@dataclass(frozen=True)
class DeliveryRecord:
    """One attempt, to be written with the pass's outcome."""

    event_id: str
    event_type: str
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    delivered: bool
    next_retry_at: datetime | None


@dataclass(frozen=True)
class Progress:
    """What one pass did: how far the cursor got, its attempts, and the hook's health."""

    cursor: Cursor
    failing_since: datetime | None
    failure_count: int
    deliveries: tuple[DeliveryRecord, ...] = field(default=())
    disabled_reason: str | None = None

    def changes(self, item: WebhookItem) -> bool:
        """Whether the hook's status as clients see it changes (a new resourceVersion)."""
        return self.disabled_reason is not None or self.failing_since != item.failing_since

    def columns(self, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {
            "cursor": self.cursor[0],
            "cursor_kind": self.cursor[1],
            "cursor_object": self.cursor[2],
            "failing_since": self.failing_since,
            "failure_count": self.failure_count,
        }
        if self.disabled_reason is not None:
            values.update(disabled_at=now, disabled_reason=self.disabled_reason[:500])
        return values


_W = cast(Table, Webhook.__table__).c
_COLUMNS = (
    _W.id,
    _W.tenant_id,
    _W.url,
    _W.events,
    _W.sealed_secret,
    _W.cursor,
    _W.cursor_kind,
    _W.cursor_object,
    _W.failing_since,
    _W.failure_count,
    _W.resource_version,
    select(Tenant.name).where(Tenant.id == Webhook.tenant_id).scalar_subquery(),
    select(Tenant.removed_at.is_not(None)).where(Tenant.id == Webhook.tenant_id).scalar_subquery(),
)


def _make(row: Sequence[Any], lease: str) -> WebhookItem:
    (
        hook_id,
        tenant_id,
        url,
        events,
        sealed,
        cursor,
        cursor_kind,
        cursor_object,
        failing_since,
        failure_count,
        resource_version,
        tenant,
        removed,
    ) = row
    return WebhookItem(
        id=hook_id,
        tenant_id=tenant_id,
        tenant=tenant or "",
        url=url,
        events=tuple(events),
        sealed_secret=sealed,
        cursor=(int(cursor), cursor_kind, cursor_object),
        failing_since=failing_since,
        failure_count=failure_count,
        resource_version=resource_version,
        lease=lease,
        tenant_removed=bool(removed),
    )


WEBHOOK_LEASES: Leases[WebhookItem] = Leases(
    Webhook, Loader(_COLUMNS, _make), live=(Webhook.disabled_at.is_(None),)
)
