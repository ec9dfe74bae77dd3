"""Tenants as the platform operator creates them, with their first admin member and API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.emails import normalise_email as normalise_address
from kupe.core.errors import (
    AlreadyExists,
    ImmutableField,
    NotFound,
    PlanDowngradeBlocked,
    ValidationFailed,
)
from kupe.core.etag import check_if_match
from kupe.core.names import name_problem
from kupe.core.phases import TenantPhase
from kupe.schemas.common import CONTROL_CHARACTERS
from kupe.schemas.tenant import Tenant as TenantView
from kupe.schemas.tenant import TenantUpdate
from kupe.server.billing.engine import ensure_draft
from kupe.server.billing.rates import Month
from kupe.server.db.engine import Database
from kupe.server.db.models import ApiKey, Member, Tenant
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.db.repositories.billing import InvoiceRepository
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.ledger import Ledger
from kupe.server.db.repositories.member import MemberRepository
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.auth import ROLES, Principal, generate_api_key
from kupe.server.services.billing import current_usage
from kupe.server.services.limits import excesses
from kupe.server.services.plan import UNLIMITED_POOL, PlanCatalogue
from kupe.server.services.views import tenant_view


def normalise_email(value: str) -> str:
    """Validate an email address and return it normalised and lower-case (members compare
    case-insensitively); private and special-use domains are fine: Kupe is self-hosted."""
    return normalise_address(value)


@dataclass(frozen=True)
class IssuedKey:
    """An API key just created: its record and the raw key, which is shown only now."""

    record: ApiKey
    raw: str


class TenantService:
    def __init__(
        self,
        db: Database,
        plans: PlanCatalogue,
        clock: Clock,
        *,
        estimate_refresh_seconds: float = 3600.0,
    ) -> None:
        self.db = db
        self.plans = plans
        self.clock = clock
        self.estimate_refresh_seconds = estimate_refresh_seconds

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
        if CONTROL_CHARACTERS.search(display_name):
            raise ValidationFailed(
                "displayName must not contain control characters", field="displayName"
            )
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
            phase=TenantPhase.ACTIVE,
            resource_version=await self.db.next_resource_version(session),
            created_at=now,
        )
        tenants.add(tenant)
        await session.flush()
        await self._plan_started(session, tenant, plan)
        await ensure_draft(session, self.db, tenant.id, Month.of(now), now)
        MemberRepository(session, tenant.id).add(
            Member(tenant_id=tenant.id, email=email, role="admin", created_at=now)
        )
        key = await self.issue_api_key(
            session, tenant.id, role="admin", display_name="initial admin key", created_by=email
        )
        return tenant, key

    async def issue_api_key(
        self,
        session: AsyncSession,
        tenant_id: str,
        *,
        role: str,
        display_name: str,
        created_by: str,
        expires_at: datetime | None = None,
    ) -> IssuedKey:
        """Create a key; only its hash is stored, the raw key is returned once."""
        if role not in ROLES:
            raise ValidationFailed("role must be admin or readonly", field="role")
        if not display_name.strip():
            raise ValidationFailed("displayName must not be blank", field="displayName")
        if CONTROL_CHARACTERS.search(display_name):
            raise ValidationFailed(
                "displayName must not contain control characters", field="displayName"
            )
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise ValidationFailed("expiresAt must be in the future", field="expiresAt")
        new = generate_api_key()
        record = ApiKey(
            id=new.id,
            tenant_id=tenant_id,
            display_name=display_name.strip(),
            role=role,
            key_hash=new.hash,
            created_by=created_by,
            created_at=now,
            expires_at=expires_at,
            resource_version=await self.db.next_resource_version(session),
        )
        ApiKeyRepository(session).add(record)
        await session.flush()
        return IssuedKey(record=record, raw=new.raw)

    async def tenant(self, session: AsyncSession, name: str, *, for_update: bool = False) -> Tenant:
        """The tenant called `name` (operator access); 404 when there is none."""
        tenant = await TenantRepository(session).by_name(name, for_update=for_update)
        if tenant is None:
            raise NotFound(f"Tenant {name!r} not found")
        return tenant

    async def has_tenants(self, session: AsyncSession) -> bool:
        return await TenantRepository(session).count() > 0

    async def list_tenants(self, session: AsyncSession) -> list[Tenant]:
        return await TenantRepository(session).list()

    # -- the Tenant object -------------------------------------------------------------------

    async def row(
        self, session: AsyncSession, tenant_id: str, *, for_update: bool = False
    ) -> Tenant:
        """The caller's tenant row, read fresh (404 if it went away meanwhile)."""
        row = await TenantRepository(session).by_id(tenant_id, for_update=for_update)
        if row is None:
            raise NotFound("Tenant not found")
        return row

    async def version(self, session: AsyncSession, tenant_id: str) -> int:
        """The tenant's resourceVersion. Its status is derived from its clusters, so the
        version also moves when one of them is created, changed or removed."""
        own = await TenantRepository(session).resource_version(tenant_id)
        clusters = await ClusterRepository(session, tenant_id).latest_version()
        invoices = await InvoiceRepository(session, tenant_id).latest_version()
        return max(own, clusters, invoices)

    async def view(self, session: AsyncSession, tenant: Tenant) -> TenantView:
        """The Tenant object with its members and status."""
        members = await MemberRepository(session, tenant.id).list()
        usage = await ClusterRepository(session, tenant.id).usage()
        plan = self.plans.get(tenant.plan) if tenant.plan in self.plans else None
        pool = (plan.resource_pool or UNLIMITED_POOL) if plan else None
        estimate = await current_usage(
            session, tenant.id, self.clock.now(), self.estimate_refresh_seconds
        )
        version = await self.version(session, tenant.id)
        return tenant_view(tenant, members, usage, pool, version, current_usage=estimate)

    async def bump(self, session: AsyncSession, tenant: Tenant) -> None:
        """Give the tenant a new resourceVersion (it changed, or one of its members did)."""
        tenant.resource_version = await self.db.next_resource_version(session)
        await session.flush()

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        patch: TenantUpdate,
        *,
        if_match: str | None,
    ) -> Tenant:
        """PATCH of plan / enforceMetricsLimit / enforceLogLimit, with If-Match."""
        principal.require_admin()
        tenant = await self.row(session, principal.tenant_id, for_update=True)
        fields = patch.model_fields_set
        for attr, wire in (
            ("name", "name"),
            ("display_name", "displayName"),
            ("contact_email", "contactEmail"),
        ):
            if attr in fields and getattr(patch, attr) != getattr(tenant, attr):
                raise ImmutableField(f"{wire} cannot be changed through the API", field=wire)
        mutable = {"plan", "enforce_metrics_limit", "enforce_log_limit"} & fields
        if not mutable:
            raise ValidationFailed(
                "send at least one of plan, enforceMetricsLimit, enforceLogLimit"
            )
        for attr, wire in (
            ("plan", "plan"),
            ("enforce_metrics_limit", "enforceMetricsLimit"),
            ("enforce_log_limit", "enforceLogLimit"),
        ):
            if attr in fields and getattr(patch, attr) is None:
                raise ValidationFailed(f"{wire} cannot be null", field=wire)
        check_if_match(if_match, await self.version(session, tenant.id))
        changed = False
        if patch.plan is not None and patch.plan != tenant.plan:
            await self._check_plan_fits(session, tenant, patch.plan)
            tenant.plan = patch.plan
            await self._plan_started(session, tenant, patch.plan)
            changed = True
        for attr in ("enforce_metrics_limit", "enforce_log_limit"):
            value = getattr(patch, attr)
            if value is not None and value != getattr(tenant, attr):
                setattr(tenant, attr, value)
                changed = True
        if changed:
            await self.bump(session, tenant)
            # Enforcing a limit changes the overage the month's estimate shows.
            await Ledger(session).touch(tenant.id, self.clock.now())
        return tenant

    async def change_plan(
        self, session: AsyncSession, tenant: Tenant, plan: str, *, force: bool = False
    ) -> None:
        """The operator's plan change; `force` skips the check against current usage."""
        if plan == tenant.plan:
            return
        if force:
            if plan not in self.plans:
                raise ValidationFailed(f"unknown plan {plan!r}", field="plan")
        else:
            await self._check_plan_fits(session, tenant, plan)
        tenant.plan = plan
        await self._plan_started(session, tenant, plan)
        await self.bump(session, tenant)

    async def _plan_started(self, session: AsyncSession, tenant: Tenant, plan: str) -> None:
        """Record the plan, and its fee now, in the billing ledger (same transaction)."""
        fee = Decimal(self.plans.get(plan).platform_fee)
        await Ledger(session).plan_started(tenant.id, plan, fee, at=self.clock.now())

    async def _check_plan_fits(self, session: AsyncSession, tenant: Tenant, name: str) -> None:
        """409 PLAN_DOWNGRADE_BLOCKED naming every limit of `name` the tenant already exceeds."""
        if name not in self.plans:
            known = ", ".join(p.name for p in self.plans.all())
            raise ValidationFailed(f"unknown plan {name!r} (plans: {known})", field="plan")
        plan = self.plans.get(name)
        clusters = ClusterRepository(session, tenant.id)
        problems: list[str] = []
        for excess in excesses(plan, self.plans.pool(plan.name), await clusters.usage()):
            if excess.limit == "maxClusters":
                problems.append(
                    f"maxClusters: the tenant has {excess.held} clusters and the {plan.name} "
                    f"plan allows {excess.allowed}"
                )
            else:
                _total, allowed, held, _over = excess.amounts()
                problems.append(
                    f"resourcePool.{excess.limit}: the tenant has {held} allocated and the "
                    f"{plan.name} plan's pool is {allowed}"
                )
        if not plan.dedicated_clusters and await clusters.has_dedicated():
            problems.append(
                f"dedicatedClusters: the tenant has dedicated clusters and the {plan.name} "
                "plan does not include them"
            )
        if problems:
            raise PlanDowngradeBlocked(
                f"Cannot move to the {plan.name} plan: " + "; ".join(problems), field="plan"
            )
