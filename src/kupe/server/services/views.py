"""Wire views of tenants and API keys, built from rows."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.schemas.apikey import ApiKey, ApiKeyCreated
from kupe.schemas.tenant import MemberView, Tenant, TenantStatus
from kupe.server.db.models import ApiKey as ApiKeyRow
from kupe.server.db.models import Tenant as TenantRow
from kupe.server.db.repository import MemberRepository


async def tenant_view(session: AsyncSession, tenant: TenantRow) -> Tenant:
    members = await MemberRepository(session, tenant.id).list()
    return Tenant(
        name=tenant.name,
        display_name=tenant.display_name,
        contact_email=tenant.contact_email,
        plan=tenant.plan,
        enforce_metrics_limit=tenant.enforce_metrics_limit,
        enforce_log_limit=tenant.enforce_log_limit,
        members=[MemberView(email=m.email, role=m.role) for m in members],
        resource_version=str(tenant.resource_version),
        created_at=tenant.created_at.replace(microsecond=0),
        status=TenantStatus(phase=tenant.phase),
    )


def api_key_view(key: ApiKeyRow, *, raw: str | None = None) -> ApiKey:
    fields = {
        "id": key.id,
        "display_name": key.display_name,
        "role": key.role,
        "created_by": key.created_by,
        "created_at": key.created_at.replace(microsecond=0),
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }
    if raw is not None:
        return ApiKeyCreated(**fields, key=raw)
    return ApiKey(**fields)
