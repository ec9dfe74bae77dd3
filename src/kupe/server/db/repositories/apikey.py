"""API keys: looked up by id across tenants for authentication, otherwise per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, or_, select, update

from kupe.server.db.models import ApiKey
from kupe.server.db.repositories.base import Repository, rowcount


class ApiKeyRepository(Repository):
    async def by_id(self, key_id: str) -> ApiKey | None:
        # populate_existing: authentication must see a revocation committed a moment ago.
        stmt = select(ApiKey).where(ApiKey.id == key_id).execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    def _active(self, tenant_id: str) -> Select[ApiKey]:
        return select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))

    async def active(
        self, tenant_id: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ApiKey]:
        """The tenant's keys that have not been revoked (expired ones included), by id."""
        stmt = self._active(tenant_id).order_by(ApiKey.id)
        if after is not None:
            stmt = stmt.where(ApiKey.id > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def get_active(self, tenant_id: str, key_id: str) -> ApiKey | None:
        stmt = self._active(tenant_id).where(ApiKey.id == key_id)
        return (await self.session.scalars(stmt)).one_or_none()

    async def revoke(
        self, tenant_id: str, key_id: str, now: datetime, *, resource_version: int
    ) -> bool:
        """Revoke an active key of the tenant; False when there is none."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now, resource_version=resource_version)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def touch(self, key_id: str, now: datetime, *, unless_after: datetime) -> None:
        """Record a use, unless one was recorded after `unless_after` (replicas race here)."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= unless_after),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )

    def add(self, key: ApiKey) -> None:
        self.session.add(key)
