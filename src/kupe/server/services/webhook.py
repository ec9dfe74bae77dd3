"""Webhook rules (API §11): a tenant's hooks, their subscriptions and URLs (checked against
server-side request forgery), the signing secret (generated when not given, shown once, sealed
at rest) and the attempts the reconciler made. Only desired state is recorded here."""

from __future__ import annotations

import builtins
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import (
    Conflict,
    NotFound,
    PlanLimitExceeded,
    PreconditionFailed,
    ValidationFailed,
)
from kupe.core.etag import check_if_match
from kupe.core.pagination import decode_continue, encode_continue, page_query
from kupe.schemas.webhook import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookStatus,
    WebhookUpdate,
)
from kupe.server.db.engine import Database
from kupe.server.db.models import Webhook as WebhookRow
from kupe.server.db.models import WebhookDelivery as DeliveryRow
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.db.repositories.webhook import WebhookRepository
from kupe.server.services.auth import Principal
from kupe.server.services.unit import UnitOfWork
from kupe.server.webhooks.events import pattern_problem
from kupe.server.webhooks.sealing import SecretSealer
from kupe.server.webhooks.ssrf import UnsafeUrl, safe_address

CAS_ATTEMPTS = 5
WEBHOOK_ID = re.compile(r"\Awh-[a-z0-9]{12}\Z")
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class WebhookOptions:
    """What the operator decided about webhooks (KUPE_WEBHOOKS__*)."""

    sealer: SecretSealer
    allow_private: bool = False
    max_per_tenant: int = 20


def webhook_view(row: WebhookRow) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        events=list(row.events),
        created_by=row.created_by,
        created_at=row.created_at.replace(microsecond=0),
        resource_version=str(row.resource_version),
        status=WebhookStatus(
            disabled=row.disabled_at is not None,
            reason=row.disabled_reason,
            disabled_at=row.disabled_at.replace(microsecond=0) if row.disabled_at else None,
            failing_since=row.failing_since.replace(microsecond=0) if row.failing_since else None,
        ),
    )


def delivery_view(row: DeliveryRow) -> WebhookDelivery:
    return WebhookDelivery(
        id=str(row.id),
        event_id=row.event_id,
        event_type=row.event_type,
        attempt=row.attempt,
        time=row.attempted_at,
        status_code=row.status_code,
        error=row.error,
        duration_ms=row.duration_ms,
        delivered=row.delivered,
        next_retry_at=row.next_retry_at,
    )


def generate_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class WebhookService:
    def __init__(self, db: Database, clock: Clock, options: WebhookOptions) -> None:
        self.db = db
        self.clock = clock
        self.options = options

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[WebhookRow], str | None]:
        principal.require_admin_role()
        after, fetch = page_query(continue_token, limit)
        rows = await WebhookRepository(session, principal.tenant_id).list(after=after, limit=fetch)
        if limit and len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_continue(rows[-1].id)
        return rows, None

    async def get(self, session: AsyncSession, principal: Principal, webhook_id: str) -> WebhookRow:
        principal.require_admin_role()
        row = (
            await WebhookRepository(session, principal.tenant_id).get(webhook_id)
            if WEBHOOK_ID.match(webhook_id)
            else None
        )
        if row is None:
            raise NotFound("Webhook not found")
        return row

    async def create(self, unit: UnitOfWork, body: WebhookCreate) -> WebhookCreated:
        """Record a hook; events after this moment are delivered to it."""
        principal = unit.principal
        principal.require_admin()
        events = _events(body.events)
        secret = body.secret or generate_secret()
        _check_secret(secret)
        await self._check_url(body.url)  # resolves the name: before the write begins
        session = await unit.session()
        repo = WebhookRepository(session, principal.tenant_id)
        await TenantRepository(session).lock(principal.tenant_id)
        if await repo.count() >= self.options.max_per_tenant:
            raise PlanLimitExceeded(
                f"A tenant may have at most {self.options.max_per_tenant} webhooks"
            )
        now = self.clock.now()
        hook_id = "wh-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        version = await self.db.next_resource_version(session)
        row = WebhookRow(
            id=hook_id,
            tenant_id=principal.tenant_id,
            url=body.url,
            events=events,
            sealed_secret=self.options.sealer.seal(principal.tenant_id, hook_id, secret),
            created_by=principal.actor,
            created_at=now,
            resource_version=version,
            # Events that committed before the hook did are not its business.
            cursor=version,
            cursor_kind="",
            cursor_object="",
            next_reconcile_at=now,
            failure_count=0,
        )
        repo.add(row)
        await session.flush()
        return WebhookCreated(**webhook_view(row).model_dump(), secret=secret)

    async def update(
        self, unit: UnitOfWork, webhook_id: str, patch: WebhookUpdate, *, if_match: str | None
    ) -> WebhookRow:
        principal = unit.principal
        principal.require_admin()
        values: dict[str, Any] = {}
        if patch.events is not None:
            values["events"] = _events(patch.events)
        if patch.secret is not None:
            _check_secret(patch.secret)
            values["sealed_secret"] = self.options.sealer.seal(
                principal.tenant_id, webhook_id, patch.secret
            )
        if patch.url is not None:
            await self._check_url(patch.url)
            values["url"] = patch.url
        session = await unit.session()
        repo = WebhookRepository(session, principal.tenant_id)
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, webhook_id)
            check_if_match(if_match, row.resource_version)
            changes = dict(values)
            if patch.enabled is True and row.disabled_at is not None:
                # Delivery resumes with the event it gave up on, retried at once.
                changes.update(disabled_at=None, disabled_reason=None, failing_since=None)
                changes.update(failure_count=0, next_reconcile_at=self.clock.now())
            elif patch.enabled is False and row.disabled_at is None:
                changes.update(disabled_at=self.clock.now(), disabled_reason="Disabled by an admin")
            if not changes:
                return row
            changes["resource_version"] = await self.db.next_resource_version(session)
            if await repo.compare_and_set(row.id, row.resource_version, changes):
                return await self.get(session, principal, webhook_id)
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Webhook is changing too fast; retry the request")

    async def delete(
        self, session: AsyncSession, principal: Principal, webhook_id: str, *, if_match: str | None
    ) -> None:
        """Remove the hook and its attempts; a delivery in flight is not recorded."""
        principal.require_admin()
        repo = WebhookRepository(session, principal.tenant_id)
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, webhook_id)
            check_if_match(if_match, row.resource_version)
            if await repo.delete(row.id, row.resource_version):
                return
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Webhook is changing too fast; retry the request")

    async def deliveries(
        self,
        session: AsyncSession,
        principal: Principal,
        webhook_id: str,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[builtins.list[DeliveryRow], str | None]:
        """A hook's attempts, newest first."""
        await self.get(session, principal, webhook_id)
        before = None
        if continue_token:
            value = decode_continue(continue_token)
            if not value.isdigit():
                raise ValidationFailed("continue token is not valid", field="continue")
            before = int(value)
        rows = await WebhookRepository(session, principal.tenant_id).deliveries(
            webhook_id, before=before, limit=limit + 1 if limit else None
        )
        if limit and len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_continue(str(rows[-1].id))
        return rows, None

    async def _check_url(self, url: str) -> None:
        try:
            await safe_address(url, allow_private=self.options.allow_private)
        except UnsafeUrl as exc:
            raise ValidationFailed(str(exc), field="url") from None


def _events(patterns: list[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        problem = pattern_problem(pattern)
        if problem:
            raise ValidationFailed(f"events: {problem}", field="events")
        if pattern not in out:
            out.append(pattern)
    return out


def _check_secret(secret: str) -> None:
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        raise ValidationFailed("secret must be printable ASCII without spaces", field="secret")
