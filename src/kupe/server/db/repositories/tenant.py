"""Tenants: live ones by name, and the operator's lifecycle of removal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update

from kupe.server.db.models import ApiKey, IdempotencyRecord, Member, Tenant
from kupe.server.db.repositories.base import Repository


class TenantRepository(Repository):
    async def by_name(self, name: str, *, for_update: bool = False) -> Tenant | None:
        """The live tenant called `name`."""
        stmt = select(Tenant).where(Tenant.name == name, Tenant.removed_at.is_(None))
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def by_id(self, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
        """The live tenant with this id (read fresh)."""
        stmt = (
            select(Tenant)
            .where(Tenant.id == tenant_id, Tenant.removed_at.is_(None))
            .execution_options(populate_existing=True)
        )
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def resource_version(self, tenant_id: str) -> int:
        """The tenant row's own resourceVersion (0 when it is gone)."""
        stmt = select(Tenant.resource_version).where(Tenant.id == tenant_id)
        return int(await self.session.scalar(stmt) or 0)

    async def lock(self, tenant_id: str) -> None:
        """Serialise quota decisions of one tenant (a row lock on PostgreSQL; SQLite has one
        writer already)."""
        # NO KEY UPDATE: serialises quota decisions without blocking foreign-key checks.
        await self.session.execute(
            select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True)
        )

    async def count(self) -> int:
        """How many tenants exist, removed ones included (bootstrap runs on an empty database
        only)."""
        return int(await self.session.scalar(select(func.count()).select_from(Tenant)) or 0)

    async def list(self) -> list[Tenant]:
        """Every live tenant, by name (operator views only)."""
        stmt = select(Tenant).where(Tenant.removed_at.is_(None)).order_by(Tenant.name)
        return list((await self.session.scalars(stmt)).all())

    def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)

    async def removed_owned_by(self, name: str, email: str) -> bool:
        """Whether a removed tenant of this name had `email` as its owner (contact email)."""
        stmt = select(Tenant.id).where(
            Tenant.name == name, Tenant.removed_at.is_not(None), Tenant.contact_email == email
        )
        return (await self.session.scalars(stmt.limit(1))).first() is not None

    async def forget_access(self, tenant_id: str) -> None:
        """Drop what only served access to a removed tenant: members, keys, remembered
        responses. Its row and its clusters' rows stay for metering history."""
        for model in (Member, ApiKey, IdempotencyRecord):
            await self.session.execute(
                delete(model)
                .where(model.tenant_id == tenant_id)
                .execution_options(synchronize_session=False)
            )

    async def remove(self, tenant_id: str, now: datetime) -> None:
        """Mark the tenant removed and forget its access (see forget_access)."""
        await self.forget_access(tenant_id)
        await self.session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(removed_at=now)
            .execution_options(synchronize_session=False)
        )
