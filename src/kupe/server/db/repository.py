"""Every query Kupe runs. Tenant-facing repositories start from a tenant-scoped statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.models import ApiKey, Cluster, IdempotencyRecord, Member, Tenant

# Hot-path statements are built once (bound parameters), not on every request.
_KEY_WITH_TENANT = (
    select(ApiKey, Tenant)
    .outerjoin(Tenant, Tenant.name == bindparam("tenant_name"))
    .where(ApiKey.id == bindparam("key_id"))
    .execution_options(populate_existing=True)
)


def key_tenant_cluster(*columns: Any) -> Select[Any]:
    """`columns` of the key `:key_id`, the tenant named `:tenant_name` and, only when the key
    belongs to that tenant, its live cluster `:cluster_name`: a GET's reads in one round trip
    (outer joins: a missing tenant or cluster gives NULLs, a missing key no row)."""
    return (
        select(*columns)
        .select_from(ApiKey)
        .outerjoin(Tenant, Tenant.name == bindparam("tenant_name"))
        .outerjoin(
            Cluster,
            and_(
                Cluster.tenant_id == Tenant.id,
                Cluster.tenant_id == ApiKey.tenant_id,
                Cluster.removed_at.is_(None),
                Cluster.name == bindparam("cluster_name"),
            ),
        )
        .where(ApiKey.id == bindparam("key_id"))
    )


_KEY_WITH_TENANT_AND_CLUSTER = key_tenant_cluster(
    ApiKey, Tenant, Cluster.id, Cluster.resource_version
).execution_options(populate_existing=True)
_CLUSTER_VERSION = select(Cluster.id, Cluster.resource_version).where(
    Cluster.tenant_id == bindparam("tenant_id"),
    Cluster.removed_at.is_(None),
    Cluster.name == bindparam("name"),
)


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
        # NO KEY UPDATE: serialises quota decisions without blocking foreign-key checks.
        await self.session.execute(
            select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True)
        )

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(Tenant)) or 0)

    async def list(self) -> list[Tenant]:
        """Every tenant, by name (operator views only)."""
        return list((await self.session.scalars(select(Tenant).order_by(Tenant.name))).all())

    def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)

    async def delete(self, tenant_id: str) -> None:
        """Remove the tenant row; members, keys and cluster history go with it (ON DELETE
        CASCADE)."""
        await self.session.execute(
            delete(Tenant)
            .where(Tenant.id == tenant_id)
            .execution_options(synchronize_session=False)
        )


class MemberRepository:
    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def add(self, member: Member) -> None:
        self.session.add(member)

    def _base(self) -> Select[Member]:
        return select(Member).where(Member.tenant_id == self.tenant_id)

    async def list(self, *, after: str | None = None, limit: int | None = None) -> list[Member]:
        stmt = self._base().order_by(Member.email)
        if after is not None:
            stmt = stmt.where(Member.email > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def get(self, email: str) -> Member | None:
        """The member with this (already lower-cased) email."""
        stmt = self._base().where(Member.email == email)
        return (await self.session.scalars(stmt)).one_or_none()

    async def count_admins(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Member)
            .where(Member.tenant_id == self.tenant_id, Member.role == "admin")
        )
        return int(await self.session.scalar(stmt) or 0)

    async def set_role(self, email: str, role: str) -> None:
        await self.session.execute(
            update(Member)
            .where(Member.tenant_id == self.tenant_id, Member.email == email)
            .values(role=role)
            .execution_options(synchronize_session=False)
        )

    async def delete(self, email: str) -> None:
        await self.session.execute(
            delete(Member)
            .where(Member.tenant_id == self.tenant_id, Member.email == email)
            .execution_options(synchronize_session=False)
        )


class ApiKeyRepository:
    """API keys: looked up by id across tenants for authentication, otherwise per tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_id(self, key_id: str) -> ApiKey | None:
        # populate_existing: authentication must see a revocation committed a moment ago.
        stmt = select(ApiKey).where(ApiKey.id == key_id).execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    async def by_id_with_tenant(
        self, key_id: str, tenant_name: str
    ) -> tuple[ApiKey, Tenant | None] | None:
        """The key and the tenant named `tenant_name` (None when there is none) in one round
        trip; None when there is no such key. Read fresh, like `by_id`."""
        params = {"key_id": key_id, "tenant_name": tenant_name}
        row = (await self.session.execute(_KEY_WITH_TENANT, params)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def by_id_with_tenant_and_cluster(
        self, key_id: str, tenant_name: str, cluster_name: str
    ) -> tuple[ApiKey, Tenant | None, ClusterVersion | None] | None:
        """`by_id_with_tenant`, plus the version of the tenant's live cluster `cluster_name`
        when the key belongs to that tenant, in the same round trip."""
        params = {"key_id": key_id, "tenant_name": tenant_name, "cluster_name": cluster_name}
        row = (await self.session.execute(_KEY_WITH_TENANT_AND_CLUSTER, params)).one_or_none()
        if row is None:
            return None
        key, tenant, cluster_id, resource_version = row
        version = (
            None
            if cluster_id is None
            else ClusterVersion(cluster_id, resource_version, cluster_name)
        )
        return key, tenant, version

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

    async def revoke(self, tenant_id: str, key_id: str, now: datetime) -> bool:
        """Revoke an active key of the tenant; False when there is none."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

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


@dataclass(frozen=True)
class Usage:
    """A tenant's live clusters and the resources they hold."""

    clusters: int
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


@dataclass(frozen=True)
class ClusterVersion:
    """Which version of which cluster: a rendered view of it is valid while these match."""

    id: str
    resource_version: int
    name: str


class ClusterRepository:
    """Clusters of one tenant that the API can see (not yet removed)."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def _live(self) -> tuple[ColumnElement[bool], ...]:
        """The tenant's live clusters, phrased so the planner reads them through the partial
        index `uq_clusters_live_name (tenant_id, name) WHERE removed_at IS NULL`. Removed
        clusters stay for metering history, so a tenant accumulates thousands; SQLite otherwise
        picks `ix_clusters_tenant_version` and walks all of them (2.3 ms instead of 7 us for a
        quota check at 20,000 removed). Every name is non-empty: `name > ''` only makes the
        partial index the cheaper plan."""
        return (
            Cluster.tenant_id == self.tenant_id,
            Cluster.removed_at.is_(None),
            Cluster.name > "",
        )

    def _base(self) -> Select[Cluster]:
        return select(Cluster).where(*self._live())

    async def get(self, name: str) -> Cluster | None:
        # populate_existing: a re-read after a lost compare-and-swap must see the new row.
        stmt = self._base().where(Cluster.name == name).execution_options(populate_existing=True)
        return (await self.session.scalars(stmt)).one_or_none()

    async def version(self, name: str) -> ClusterVersion | None:
        """The id and resourceVersion of the live cluster `name`: enough to answer a conditional
        GET, or to find its rendered view, without loading the row."""
        params = {"tenant_id": self.tenant_id, "name": name}
        row = (await self.session.execute(_CLUSTER_VERSION, params)).one_or_none()
        return None if row is None else ClusterVersion(row[0], row[1], name)

    async def versions(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[ClusterVersion]:
        """`list` as ids and resourceVersions only (same order, same page)."""
        stmt = (
            select(Cluster.id, Cluster.resource_version, Cluster.name)
            .where(*self._live())
            .order_by(Cluster.name)
        )
        if after is not None:
            stmt = stmt.where(Cluster.name > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [ClusterVersion(r[0], r[1], r[2]) for r in (await self.session.execute(stmt)).all()]

    async def by_ids(self, ids: list[str]) -> list[Cluster]:
        """The live clusters among `ids` (any order)."""
        stmt = self._base().where(Cluster.id.in_(ids)).execution_options(populate_existing=True)
        return list((await self.session.scalars(stmt)).all())

    async def list(self, *, after: str | None = None, limit: int | None = None) -> list[Cluster]:
        stmt = self._base().order_by(Cluster.name)
        if after is not None:
            stmt = stmt.where(Cluster.name > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def latest_version(self) -> int:
        """The newest resourceVersion of any of the tenant's clusters, removed ones included:
        it moves whenever a cluster is created, changed or removed."""
        stmt = select(func.max(Cluster.resource_version)).where(Cluster.tenant_id == self.tenant_id)
        return int(await self.session.scalar(stmt) or 0)

    async def has_dedicated(self) -> bool:
        """Whether any live cluster of the tenant is dedicated."""
        stmt = self._base().where(Cluster.type == "dedicated").limit(1)
        return (await self.session.scalars(stmt)).first() is not None

    async def usage(self, *, excluding: str | None = None) -> Usage:
        stmt = select(
            func.count(),
            func.coalesce(func.sum(Cluster.cpu_millis), 0),
            func.coalesce(func.sum(Cluster.memory_bytes), 0),
            func.coalesce(func.sum(Cluster.storage_bytes), 0),
        ).where(*self._live())
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
