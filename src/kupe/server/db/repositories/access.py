"""The reads behind authentication: a key, the tenant a request names and, in the same round
trip, the version of the object it asks about (any table of named, tenant-owned objects)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Select, and_, bindparam, select

from kupe.server.db.models import ApiKey, Tenant
from kupe.server.db.refs import ObjectVersion
from kupe.server.db.repositories.base import Repository


class NamedObject(Protocol):
    """An ORM class of named objects owned by a tenant, gone from the API once removed."""

    id: Any
    tenant_id: Any
    name: Any
    removed_at: Any
    resource_version: Any


def key_tenant_object(*columns: Any, target: type[NamedObject] | None = None) -> Select[Any]:
    """`columns` of the key `:key_id`, the live tenant named `:tenant_name` and, only when the
    key belongs to that tenant, its live object `:object_name` of `target` (outer joins: a
    missing tenant or object gives NULLs, a missing key no row)."""
    stmt = (
        select(*columns)
        .select_from(ApiKey)
        .outerjoin(
            Tenant, and_(Tenant.name == bindparam("tenant_name"), Tenant.removed_at.is_(None))
        )
    )
    if target is not None:
        stmt = stmt.outerjoin(
            target,
            and_(
                target.tenant_id == Tenant.id,
                target.tenant_id == ApiKey.tenant_id,
                target.removed_at.is_(None),
                target.name == bindparam("object_name"),
            ),
        )
    return stmt.where(ApiKey.id == bindparam("key_id"))


_KEY_WITH_TENANT = key_tenant_object(ApiKey, Tenant).execution_options(populate_existing=True)
_WITH_OBJECT: dict[type[Any], Select[Any]] = {}


def _with_object(target: type[NamedObject]) -> Select[Any]:
    # Built once per table (bound parameters), not on every request.
    stmt = _WITH_OBJECT.get(target)
    if stmt is None:
        stmt = key_tenant_object(
            ApiKey, Tenant, target.id, target.resource_version, target=target
        ).execution_options(populate_existing=True)
        _WITH_OBJECT[target] = stmt
    return stmt


class AccessRepository(Repository):
    async def key_with_tenant(
        self, key_id: str, tenant_name: str
    ) -> tuple[ApiKey, Tenant | None] | None:
        """The key and the live tenant named `tenant_name` (None when there is none) in one
        round trip; None when there is no such key. Read fresh: a revocation applies at once."""
        params = {"key_id": key_id, "tenant_name": tenant_name}
        row = (await self.session.execute(_KEY_WITH_TENANT, params)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def key_with_tenant_and_object(
        self, key_id: str, tenant_name: str, target: type[NamedObject], name: str
    ) -> tuple[ApiKey, Tenant | None, ObjectVersion | None] | None:
        """`key_with_tenant`, plus the version of the tenant's live `target` object `name`
        when the key belongs to that tenant, in the same round trip."""
        params = {"key_id": key_id, "tenant_name": tenant_name, "object_name": name}
        row = (await self.session.execute(_with_object(target), params)).one_or_none()
        if row is None:
            return None
        key, tenant, object_id, resource_version = row
        version = None if object_id is None else ObjectVersion(object_id, resource_version, name)
        return key, tenant, version

    async def object_version(
        self, target: type[NamedObject], tenant_id: str, name: str
    ) -> ObjectVersion | None:
        """The id and resourceVersion of the tenant's live `target` object `name`."""
        stmt = select(target.id, target.resource_version).where(
            target.tenant_id == tenant_id, target.removed_at.is_(None), target.name == name
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else ObjectVersion(row[0], row[1], name)
