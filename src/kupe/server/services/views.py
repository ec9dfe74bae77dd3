"""Wire views of tenants, members and API keys, built from rows."""

from __future__ import annotations

from kupe.core.quantity import format_bytes, format_cpu
from kupe.schemas.apikey import ApiKey, ApiKeyCreated
from kupe.schemas.billing import CurrentUsage
from kupe.schemas.plan import ResourceAmounts
from kupe.schemas.tenant import MemberView, Tenant, TenantStatus
from kupe.server.db.models import ApiKey as ApiKeyRow
from kupe.server.db.models import Member as MemberRow
from kupe.server.db.models import Tenant as TenantRow
from kupe.server.db.repositories.cluster import Usage


def tenant_view(
    tenant: TenantRow,
    members: list[MemberRow],
    usage: Usage,
    pool: ResourceAmounts | None,
    resource_version: int,
    *,
    current_usage: CurrentUsage | None = None,
) -> Tenant:
    """The Tenant object; `current_usage` is billing's running estimate."""
    return Tenant(
        name=tenant.name,
        display_name=tenant.display_name,
        contact_email=tenant.contact_email,
        plan=tenant.plan,
        enforce_metrics_limit=tenant.enforce_metrics_limit,
        enforce_log_limit=tenant.enforce_log_limit,
        members=[member_view(m) for m in members],
        resource_version=str(resource_version),
        created_at=tenant.created_at.replace(microsecond=0),
        status=TenantStatus(
            phase=tenant.phase,
            cluster_count=usage.clusters,
            allocated_resources=ResourceAmounts(
                cpu=format_cpu(usage.cpu_millis),
                memory=format_bytes(usage.memory_bytes),
                storage=format_bytes(usage.storage_bytes),
            ),
            pool_resources=pool,
            current_usage=current_usage,
        ),
    )


def member_view(member: MemberRow) -> MemberView:
    return MemberView(email=member.email, role=member.role)


def api_key_view(key: ApiKeyRow, *, raw: str | None = None) -> ApiKey:
    """Metadata of a key; with `raw`, the one-time answer to its creation."""
    fields = {
        "id": key.id,
        "display_name": key.display_name,
        "role": key.role,
        "created_by": key.created_by,
        "created_at": key.created_at.replace(microsecond=0),
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at.replace(microsecond=0) if key.last_used_at else None,
    }
    if raw is not None:
        return ApiKeyCreated(**fields, key=raw)
    return ApiKey(**fields)
