"""The audit log: a tenant's entries newest first, and the pruning of old ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from kupe.server.db.models import AuditEntry
from kupe.server.db.repositories.base import Repository, TenantScoped, rowcount


@dataclass(frozen=True)
class AuditFilter:
    """What a listing of the audit log keeps (None: no restriction)."""

    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository(TenantScoped):
    async def list(
        self, which: AuditFilter, *, before: int | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Entries newest first; `before` (an entry id) starts after the previous page."""
        stmt = select(AuditEntry).where(AuditEntry.tenant_id == self.tenant_id)
        if which.actor is not None:
            stmt = stmt.where(AuditEntry.actor == which.actor)
        if which.target is not None:
            stmt = stmt.where(AuditEntry.target == which.target)
        if which.since is not None:
            stmt = stmt.where(AuditEntry.created_at >= which.since)
        if which.until is not None:
            stmt = stmt.where(AuditEntry.created_at < which.until)
        if before is not None:
            stmt = stmt.where(AuditEntry.id < before)
        stmt = stmt.order_by(AuditEntry.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())


class AuditLog(Repository):
    """Writes of the audit log, across tenants (each entry names its own)."""

    def add(self, entry: AuditEntry) -> None:
        self.session.add(entry)

    async def set_status(self, entry_id: int, status: int) -> None:
        await self.session.execute(
            update(AuditEntry)
            .where(AuditEntry.id == entry_id)
            .values(status=status)
            .execution_options(synchronize_session=False)
        )

    async def prune(self, older_than: datetime, batch: int) -> int:
        """Delete up to `batch` of the oldest entries from before `older_than`."""
        oldest = (
            select(AuditEntry.id)
            .where(AuditEntry.created_at < older_than)
            .order_by(AuditEntry.id)
            .limit(batch)
        )
        result = await self.session.execute(
            delete(AuditEntry)
            .where(AuditEntry.id.in_(oldest))
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)
