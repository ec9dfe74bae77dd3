"""Tenants as the platform operator creates them, with their first admin member and API key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.emails import normalise_email as normalise_address
from kupe.core.errors import (
    AlreadyExists,
    Conflict,
    ImmutableField,
    NotFound,
    PlanDowngradeBlocked,
    ValidationFailed,
)
from kupe.core.etag import check_if_match
from kupe.core.names import name_problem
from kupe.core.quantity import format_bytes, format_cpu
from kupe.schemas.common import CONTROL_CHARACTERS
from kupe.schemas.tenant import Tenant as TenantView
from kupe.schemas.tenant import TenantUpdate
from kupe.server.db.engine import Database
from kupe.server.db.models import ApiKey, Member, Tenant
from kupe.server.db.repository import (
    ApiKeyRepository,
    ClusterRepository,
    MemberRepository,
    TenantRepository,
)
from kupe.server.services.auth import ROLES, Principal, generate_api_key
from kupe.server.services.cluster import ClusterService
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.views import tenant_view

PHASES = ("Active", "Suspended", "Terminating")


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
            tenant_id=tenant.id,
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

    async def version(self, session: AsyncSession, tenant: Tenant) -> int:
        """The tenant's resourceVersion. Its status is derived from its clusters, so the
        version also moves when one of them is created, changed or removed."""
        clusters = await ClusterRepository(session, tenant.id).latest_version()
        return max(tenant.resource_version, clusters)

    async def view(self, session: AsyncSession, tenant: Tenant) -> TenantView:
        """The Tenant object with its members and status."""
        members = await MemberRepository(session, tenant.id).list()
        usage = await ClusterRepository(session, tenant.id).usage()
        plan = self.plans.get(tenant.plan) if tenant.plan in self.plans else None
        pool = plan.resource_pool if plan else None
        return tenant_view(tenant, members, usage, pool, await self.version(session, tenant))

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
        tenant = principal.tenant
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
        check_if_match(if_match, await self.version(session, tenant))
        changed = False
        if patch.plan is not None and patch.plan != tenant.plan:
            await self._check_plan_fits(session, tenant, patch.plan)
            tenant.plan = patch.plan
            changed = True
        for attr in ("enforce_metrics_limit", "enforce_log_limit"):
            value = getattr(patch, attr)
            if value is not None and value != getattr(tenant, attr):
                setattr(tenant, attr, value)
                changed = True
        if changed:
            await self.bump(session, tenant)
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
        await self.bump(session, tenant)

    async def _check_plan_fits(self, session: AsyncSession, tenant: Tenant, name: str) -> None:
        """409 PLAN_DOWNGRADE_BLOCKED naming every limit of `name` the tenant already exceeds."""
        if name not in self.plans:
            known = ", ".join(p.name for p in self.plans.all())
            raise ValidationFailed(f"unknown plan {name!r} (plans: {known})", field="plan")
        plan = self.plans.get(name)
        clusters = ClusterRepository(session, tenant.id)
        usage = await clusters.usage()
        problems: list[str] = []
        if plan.max_clusters is not None and usage.clusters > plan.max_clusters:
            problems.append(
                f"maxClusters: the tenant has {usage.clusters} clusters and the {plan.name} "
                f"plan allows {plan.max_clusters}"
            )
        pool = self.plans.pool(plan.name)
        if pool is not None:
            for field, held, limit, fmt in (
                ("cpu", usage.cpu_millis, pool.cpu_millis, format_cpu),
                ("memory", usage.memory_bytes, pool.memory_bytes, format_bytes),
                ("storage", usage.storage_bytes, pool.storage_bytes, format_bytes),
            ):
                if held > limit:
                    problems.append(
                        f"resourcePool.{field}: the tenant has {fmt(held)} allocated and the "
                        f"{plan.name} plan's pool is {fmt(limit)}"
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

    # -- operator lifecycle ------------------------------------------------------------------

    async def set_phase(self, session: AsyncSession, tenant: Tenant, phase: str) -> None:
        """Suspend (reads only; clusters keep running) or resume a tenant."""
        assert phase in PHASES
        if tenant.phase == "Terminating" and phase != "Terminating":
            raise Conflict("Tenant is being deleted", code="TENANT_TERMINATING")
        if tenant.phase != phase:
            tenant.phase = phase
            await self.bump(session, tenant)

    async def begin_deletion(
        self, session: AsyncSession, tenant: Tenant, clusters: ClusterService, *, cascade: bool
    ) -> int:
        """Start deleting a tenant; returns how many of its clusters are still live.

        Without `cascade` a tenant that holds clusters is refused. With it, each cluster is
        deleted as `DELETE /clusters/{name}` would (the reconciler tears it down) and the
        tenant becomes Terminating until `finish_deletion` can remove it.
        """
        repo = ClusterRepository(session, tenant.id)
        live = await repo.list()
        if live and not cascade and tenant.phase != "Terminating":
            names = ", ".join(row.name for row in live[:10])
            raise Conflict(
                f"Tenant {tenant.name!r} still has {len(live)} cluster(s) ({names}); "
                "delete them first or pass --cascade",
                code="TENANT_HAS_CLUSTERS",
            )
        operator = Principal(tenant=tenant, role="admin", actor="operator", operator=True)
        for row in live:
            await clusters.delete(session, operator, row.name, if_match=None)
        await self.set_phase(session, tenant, "Terminating")
        return len(live)

    async def finish_deletion(self, session: AsyncSession, tenant: Tenant) -> bool:
        """Remove a Terminating tenant once the reconciler has removed all its clusters."""
        if tenant.phase != "Terminating":
            return False
        if (await ClusterRepository(session, tenant.id).usage()).clusters:
            return False
        await TenantRepository(session).delete(tenant.id)
        return True
