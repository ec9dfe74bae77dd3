"""API keys of a tenant (API §5): admins create, list and revoke them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import NotFound, ValidationFailed
from kupe.core.pagination import cut_page, page_query
from kupe.schemas.apikey import ApiKeyCreate
from kupe.server.db.models import ApiKey
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.services.auth import API_KEY_ID_PATTERN, Principal
from kupe.server.services.tenant import IssuedKey, TenantService


class ApiKeyService:
    def __init__(self, tenants: TenantService, clock: Clock) -> None:
        self.tenants = tenants
        self.clock = clock

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[ApiKey], str | None]:
        """The tenant's keys that still exist (expired ones too), by id; metadata only."""
        principal.require_admin_role()
        after, fetch = page_query(continue_token, limit)
        rows = await ApiKeyRepository(session).active(principal.tenant_id, after=after, limit=fetch)
        return cut_page(rows, limit, lambda key: key.id)

    async def create(
        self, session: AsyncSession, principal: Principal, body: ApiKeyCreate
    ) -> IssuedKey:
        """A new key; `createdBy` is the calling member's email or `apikey:<id>`."""
        principal.require_admin()
        return await self.tenants.issue_api_key(
            session,
            principal.tenant_id,
            role=body.role,
            display_name=body.display_name,
            created_by=principal.actor,
            expires_at=body.expires_at,
        )

    async def revoke(self, session: AsyncSession, principal: Principal, key_id: str) -> None:
        """Revoke at once: the next request with the key answers 401. Works while the tenant
        is suspended: a leaked key must always be revocable."""
        principal.require_security_admin()
        if not API_KEY_ID_PATTERN.match(key_id):
            raise ValidationFailed(
                "API key id must look like ak-<8 lowercase letters or digits>", field="id"
            )
        if not await ApiKeyRepository(session).revoke(
            principal.tenant_id,
            key_id,
            self.clock.now(),
            resource_version=await self.tenants.db.next_resource_version(session),
        ):
            raise NotFound(f"API key {key_id!r} not found")
