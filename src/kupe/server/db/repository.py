"""Every query Kupe runs. Tenant-facing repositories start from a tenant-scoped statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.models import ApiKey, Cluster, IdempotencyRecord, Member, Tenant


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_name(self, name: str, *, for_update: bool = False) -> Tenant | None:
        stmt = select(Tenant).where(Tenant.name == name)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).one_or_none()

    async def lock(self, tenant_id: str) -> None:
        """Serialise quota decisions of one tenant (a row lock on PostgreSQL; SQLite has one
        writer already)."""
        await self.session.execute(
            select(Tenant.id).where(Tenant.id == tenant_id).with_for_update()
        )

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Tenant)) or 0)

    def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)


class MemberRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def add(self, member: Member) -> None:
        self.session.add(member)

    async def list(self) -> list[Member]:
        stmt = select(Member).where(Member.tenant_id == self.tenant_id).order_by(Member.email)
        return list((await self.session.scalars(stmt)).all())


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    def add(self, key: ApiKey) -> None:
        self.session.add(key)


@dataclass(frozen=True)
class Usage:
    """A tenant's live clusters and the resources they hold."""

    clusters: int
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


class ClusterRepository:
    """Clusters of one tenant that the API can see (not yet removed)."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _base(self) -> Select[Cluster]:
        return select(Cluster).where(
            Cluster.tenant_id == self.tenant_id, Cluster.removed_at.is_(None)
        )

    async def get(self, name: str) -> Cluster | None:
        # populate_existing: a re-read after a lost compare-and-swap must see the new row.
        stmt = self._base().where(Cluster.name == name).execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    async def list(self, *, after: str | None = None, limit: int | None = None) -> list[Cluster]:
        stmt = self._base().order_by(Cluster.name)
        if after is not None:
            stmt = stmt.where(Cluster.name > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def usage(self, *, excluding: str | None = None) -> Usage:
        stmt = select(
            func.count(),
            func.coalesce(func.sum(Cluster.cpu_millis), 0),
            func.coalesce(func.sum(Cluster.memory_bytes), 0),
            func.coalesce(func.sum(Cluster.storage_bytes), 0),
        ).where(Cluster.tenant_id == self.tenant_id, Cluster.removed_at.is_(None))
        if excluding is not None:
            stmt = stmt.where(Cluster.id != excluding)
        row = (await self.session.execute(stmt)).one()
        return Usage(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def add(self, cluster: Cluster) -> None:
        self.session.add(cluster)

    async def compare_and_set(
        self, cluster_id: str, expected_version: int, values: dict[str, Any]
    ) -> bool:
        """Write `values` only if the row still has `expected_version`; False when it moved on."""
        result = await self.session.execute(
            update(Cluster)
            .where(
                Cluster.id == cluster_id,
                Cluster.tenant_id == self.tenant_id,
                Cluster.resource_version == expected_version,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


class IdempotencyRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def get(self, key: str, *, newer_than: datetime) -> IdempotencyRecord | None:
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == self.tenant_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at > newer_than,
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def forget_older_than(self, key: str, moment: datetime) -> None:
        """Drop an expired record for `key` so the key can be used afresh."""
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == self.tenant_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at <= moment,
        )
        for record in (await self.session.scalars(stmt)).all():
            await self.session.delete(record)
        await self.session.flush()

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)
