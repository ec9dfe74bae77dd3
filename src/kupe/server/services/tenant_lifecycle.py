"""A tenant's lifecycle: suspension, and deletion — by the operator, or by its owner through
the hosted API's DELETE /tenants/{tenant} — which cascades to its clusters and secrets and is
finished by the reconciler (the tenant kind) once they are gone."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import Conflict, Forbidden, RateLimited, ValidationFailed
from kupe.core.phases import TenantPhase
from kupe.schemas.tenant import TenantDelete
from kupe.server.db.models import Tenant
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.auth import Principal
from kupe.server.services.cluster import ClusterService
from kupe.server.services.secret import SecretService
from kupe.server.services.tenant import TenantService

DELETION_INTERVAL = timedelta(minutes=1)


class TenantLifecycle:
    def __init__(
        self,
        tenants: TenantService,
        clusters: ClusterService,
        secrets: SecretService,
        clock: Clock,
    ) -> None:
        self.tenants = tenants
        self.clusters = clusters
        self.secrets = secrets
        self.clock = clock
        # When each tenant's deletion was last asked for, in this process (a token bucket of
        # one a minute, as the other rate limits, per process).
        self._deletion_requests: dict[str, datetime] = {}

    async def set_phase(self, session: AsyncSession, tenant: Tenant, phase: TenantPhase) -> None:
        """Suspend (reads only; clusters keep running) or resume a tenant."""
        if tenant.phase == TenantPhase.TERMINATING and phase != TenantPhase.TERMINATING:
            raise Conflict("Tenant is being deleted", code="TENANT_TERMINATING")
        if tenant.phase != phase:
            tenant.phase = phase
            await self.tenants.bump(session, tenant)

    async def begin_deletion(
        self,
        session: AsyncSession,
        tenant: Tenant,
        *,
        cascade: bool,
    ) -> int:
        """Start deleting a tenant; returns how many of its clusters are still live.

        Without `cascade` a tenant that holds clusters is refused. With it, each cluster is
        deleted as `DELETE /clusters/{name}` would (the reconciler tears it down) and the
        tenant becomes Terminating until `finish_deletion` can remove it.
        """
        live = await ClusterRepository(session, tenant.id).list()
        if live and not cascade and tenant.phase != TenantPhase.TERMINATING:
            names = ", ".join(row.name for row in live[:10])
            raise Conflict(
                f"Tenant {tenant.name!r} still has {len(live)} cluster(s) ({names}); "
                "delete them first or pass --cascade",
                code="TENANT_HAS_CLUSTERS",
            )
        remaining = await self.clusters.delete_all(session, tenant.id)
        await self.secrets.delete_all(session, tenant.id)
        await self.set_phase(session, tenant, TenantPhase.TERMINATING)
        tenant.next_reconcile_at = self.clock.now()
        return remaining

    async def request_deletion(
        self,
        session: AsyncSession,
        principal: Principal,
        body: TenantDelete,
    ) -> Tenant:
        """The hosted API's DELETE /tenants/{tenant}: only its owner (the contact email) with
        an OIDC token; the name typed to confirm; refused while clusters live unless
        `cascade`; at most one request a minute. The tenant becomes Terminating and the
        reconciler removes it once its clusters are gone."""
        if (
            principal.member_email is None
            or principal.member_email != principal.tenant.contact_email
        ):
            raise Forbidden(
                "Only the tenant's owner, signed in with OIDC as its contact email, may delete it",
                code="owner_required",
            )
        self._throttle_deletion(principal.tenant_id)
        if body.confirm != principal.tenant.name:
            raise ValidationFailed("confirm must be the tenant's name", field="confirm")
        tenant = await self.tenants.row(session, principal.tenant_id, for_update=True)
        if tenant.phase == TenantPhase.TERMINATING:
            raise Conflict("The tenant is already being deleted", code="already_terminating")
        if not body.cascade and (await ClusterRepository(session, tenant.id).usage()).clusters:
            raise Conflict(
                "The tenant still has clusters; delete them first or send cascade: true",
                code="clusters_exist",
            )
        await self.clusters.delete_all(session, tenant.id)
        await self.secrets.delete_all(session, tenant.id)
        tenant.phase = TenantPhase.TERMINATING
        tenant.next_reconcile_at = self.clock.now()
        await self.tenants.bump(session, tenant)
        return tenant

    def _throttle_deletion(self, tenant_id: str) -> None:
        now = self.clock.now()
        last = self._deletion_requests.get(tenant_id)
        if last is not None and now - last < DELETION_INTERVAL:
            wait = int((DELETION_INTERVAL - (now - last)).total_seconds()) + 1
            raise RateLimited(
                "A tenant may be asked to be deleted once a minute",
                headers={"Retry-After": str(wait)},
            )
        self._deletion_requests[tenant_id] = now

    async def finish_deletion(self, session: AsyncSession, tenant: Tenant) -> bool:
        """Remove a Terminating tenant once the reconciler has removed all its clusters. Its
        row and its clusters' rows stay for metering history; members and keys go."""
        if tenant.phase != TenantPhase.TERMINATING:
            return False
        if (await ClusterRepository(session, tenant.id).usage()).clusters:
            return False
        await TenantRepository(session).remove(tenant.id, self.clock.now())
        return True
