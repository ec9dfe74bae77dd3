"""The audit log (API §11): every mutating request of an authenticated caller of a tenant,
accepted or refused, with who, from where, what and how it went; never a body or credential.

A request's `AuditContext` (a context variable set by the API's audit middleware) learns the
caller when the request scope authenticates it. An accepted write's entry is added to the
write's own transaction just before it commits (`stage`), so it commits with the mutation or
not at all; a refused request, or one that wrote nothing, gets its entry in a transaction of
its own as the response starts (`AuditService.complete`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import ValidationFailed
from kupe.core.pagination import decode_continue, encode_continue
from kupe.schemas.audit import AuditEntry as AuditView
from kupe.server.db.engine import Database
from kupe.server.db.models import AuditEntry
from kupe.server.db.repositories.audit import AuditFilter, AuditLog, AuditRepository
from kupe.server.services.auth import Principal
from kupe.server.services.periodic import delete_in_batches

TENANT_ROUTE = "/api/v1/tenants/{tenant}"
# No stored actor or target holds these (and PostgreSQL cannot compare text with NUL).
_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RouteInfo:
    """The matched route's template, path parameters and declared success status."""

    template: str
    params: dict[str, str]
    status: int


@dataclass
class AuditContext:
    """One mutating request on its way through the API."""

    method: str
    client_ip: str
    route: Callable[[], RouteInfo | None]
    principal: Principal | None = None
    location: str | None = None  # where a create put its object (its Location header)
    staged: AuditEntry | None = None
    committed: bool = False

    def target(self, info: RouteInfo) -> str:
        """What the request acted on, relative to the tenant: `clusters/web`, `tenant`."""
        if self.location and self.location.startswith("/api/v1/tenants/"):
            rest = self.location.split("/", 5)[5:]
            if rest:
                return rest[0]
        relative = info.template.removeprefix(TENANT_ROUTE).strip("/")
        for name, value in info.params.items():
            relative = relative.replace("{" + name + "}", value)
        return relative or "tenant"


_CURRENT: ContextVar[AuditContext | None] = ContextVar("kupe_audit", default=None)


def begin(context: AuditContext) -> Token[AuditContext | None]:
    """Make `context` the current request's; `end` with the token when it is answered."""
    return _CURRENT.set(context)


def end(token: Token[AuditContext | None]) -> None:
    _CURRENT.reset(token)


def current() -> AuditContext | None:
    return _CURRENT.get()


def identified(principal: Principal) -> None:
    """The request scope authenticated the caller."""
    context = _CURRENT.get()
    if context is not None:
        context.principal = principal


def created_at(location: str | None) -> None:
    """A create answered with `location`: the entry names what it made."""
    context = _CURRENT.get()
    if context is not None and location:
        context.location = location


def entry(context: AuditContext, request_id: str, status: int, now: datetime) -> AuditEntry | None:
    """The row for `context`, or None when there is nothing to record."""
    info = context.route()
    principal = context.principal
    if principal is None or info is None:
        return None
    return AuditEntry(
        tenant_id=principal.tenant_id,
        actor=principal.actor[:340],
        client_ip=context.client_ip[:64],
        request_id=request_id[:128],
        method=context.method,
        route=info.template[:300],
        target=context.target(info)[:400],
        status=status,
        created_at=now,
    )


def stage(session: AsyncSession, now: datetime) -> AuditContext | None:
    """Add the current request's entry, with its route's success status, to the write
    transaction about to commit; the context to mark `committed` once it has."""
    context = _CURRENT.get()
    if context is None or context.staged is not None:
        return None
    request_id = str(structlog.contextvars.get_contextvars().get("request_id", ""))
    info = context.route()
    row = entry(context, request_id, info.status if info else 200, now)
    if row is not None:
        AuditLog(session).add(row)
        context.staged = row
        return context
    return None


def view(row: AuditEntry) -> AuditView:
    return AuditView(
        actor=row.actor,
        client_ip=row.client_ip,
        request_id=row.request_id,
        method=row.method,
        route=row.route,
        target=row.target,
        status=row.status,
        time=row.created_at.replace(microsecond=0),
    )


class AuditService:
    def __init__(self, db: Database, clock: Clock, *, retention_days: float, batch: int) -> None:
        self.db = db
        self.clock = clock
        self.retention = timedelta(days=retention_days)
        self.batch = batch

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        which: AuditFilter,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """The tenant's entries newest first (admins only)."""
        principal.require_admin_role()
        for name, value in (("actor", which.actor), ("target", which.target)):
            if value is not None and _UNSTORABLE.search(value):
                raise ValidationFailed(f"{name} must be printable text", field=name)
        which = AuditFilter(
            actor=which.actor,
            target=which.target,
            since=_utc(which.since),
            until=_utc(which.until),
        )
        if which.since and which.until and which.since > which.until:
            raise ValidationFailed("since must not be after until", field="since")
        before = _before(continue_token) if continue_token else None
        rows = await AuditRepository(session, principal.tenant_id).list(
            which, before=before, limit=limit + 1 if limit else None
        )
        if limit and len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_continue(str(rows[-1].id))
        return rows, None

    async def complete(self, context: AuditContext, request_id: str, status: int) -> None:
        """As the response starts: record what the write's own transaction did not."""
        if context.staged is not None and context.committed:
            if context.staged.status != status:
                async with self.db.write() as session:
                    await AuditLog(session).set_status(context.staged.id, status)
            return
        row = entry(context, request_id, status, self.clock.now())
        if row is not None:
            async with self.db.write() as session:
                AuditLog(session).add(row)

    async def prune(self) -> int:
        """Delete entries past retention, a batch per transaction; returns how many."""
        cutoff = self.clock.now() - self.retention
        return await delete_in_batches(
            self.db, lambda session: AuditLog(session).prune(cutoff, self.batch), self.batch
        )


def _before(token: str) -> int:
    value = decode_continue(token)
    if not value.isdigit():
        raise ValidationFailed("continue token is not valid", field="continue")
    return int(value)


def _utc(moment: datetime | None) -> datetime | None:
    """A filter time; one without an offset is read as UTC, as Kupe writes every time."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
