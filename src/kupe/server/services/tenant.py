"""Tenants as the platform operator creates them, with their first admin member and API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import AlreadyExists, NotFound, ValidationFailed
from kupe.core.names import name_problem
from kupe.server.db.engine import Database
from kupe.server.db.models import ApiKey, Member, Tenant
from kupe.server.db.repository import ApiKeyRepository, MemberRepository, TenantRepository
from kupe.server.services.auth import ROLES, generate_api_key
from kupe.server.services.plan import PlanCatalogue


def normalise_email(value: str) -> str:
    """Validate an email address and return it lower-case (members compare case-insensitively).

    Private domains (corp.internal, corp.lan) are fine: Kupe is self-hosted.
    """
    try:
        checked = validate_email(
            value.strip(), check_deliverability=False, globally_deliverable=False
        )
    except EmailNotValidError:
        raise ValidationFailed(f"{value!r} is not a valid email address", field="email") from None
    return checked.normalized.lower()


@dataclass(frozen=True)
class IssuedKey:
    """An API key just created: its record and the raw key, which is shown only now."""

    record: ApiKey
    raw: str


class TenantService:
    def __init__(self, db: Database, plans: PlanCatalogue, clock: Clock) -> None:
        self.db = db
        self.plans = plans
        self.clock = clock

    async def create_tenant(
        self,
        session: AsyncSession,
        *,
        name: str,
        display_name: str,
        contact_email: str,
        plan: str,
    ) -> tuple[Tenant, IssuedKey]:
        """Create a tenant, make the contact an admin member and issue an admin API key."""
        problem = name_problem(name, "tenant name")
        if problem:
            raise ValidationFailed(problem, field="name")
        if not display_name.strip():
            raise ValidationFailed("displayName must not be empty", field="displayName")
        if plan not in self.plans:
            raise ValidationFailed(f"unknown plan {plan!r}", field="plan")
        email = normalise_email(contact_email)
        tenants = TenantRepository(session)
        if await tenants.by_name(name) is not None:
            raise AlreadyExists(f"Tenant {name!r} already exists")
        now = self.clock.now()
        tenant = Tenant(
            id=uuid.uuid4().hex,
            name=name,
            display_name=display_name.strip(),
            contact_email=email,
            plan=plan,
            enforce_metrics_limit=False,
            enforce_log_limit=False,
            phase="Active",
            resource_version=await self.db.next_resource_version(session),
            created_at=now,
        )
        tenants.add(tenant)
        await session.flush()
        MemberRepository(session, tenant.id).add(
            Member(tenant_id=tenant.id, email=email, role="admin", created_at=now)
        )
        key = await self.issue_api_key(
            session, tenant, role="admin", display_name="initial admin key", created_by=email
        )
        return tenant, key

    async def issue_api_key(
        self,
        session: AsyncSession,
        tenant: Tenant,
        *,
        role: str,
        display_name: str,
        created_by: str,
    ) -> IssuedKey:
        if role not in ROLES:
            raise ValidationFailed("role must be admin or readonly", field="role")
        new = generate_api_key()
        record = ApiKey(
            id=new.id,
            tenant_id=tenant.id,
            display_name=display_name,
            role=role,
            key_hash=new.hash,
            created_by=created_by,
            created_at=self.clock.now(),
        )
        ApiKeyRepository(session).add(record)
        await session.flush()
        return IssuedKey(record=record, raw=new.raw)

    async def tenant(self, session: AsyncSession, name: str) -> Tenant:
        tenant = await TenantRepository(session).by_name(name)
        if tenant is None:
            raise NotFound(f"Tenant {name!r} not found")
        return tenant

    async def has_tenants(self, session: AsyncSession) -> bool:
        return await TenantRepository(session).count() > 0
