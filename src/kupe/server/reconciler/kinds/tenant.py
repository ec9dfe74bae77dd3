"""The tenant kind: a tenant being deleted is removed once its clusters are gone.

Its "world" is Kupe's own database: the clusters the tenant still has (their teardown is the
cluster kind's). Removal keeps the tenant's row and its clusters' rows for metering history and
the final invoice; members, keys and remembered responses go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.phases import TenantPhase
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult, Leases, Loader
from kupe.server.db.models import Tenant
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.ledger import Ledger
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.reconciler.kind import LeaseCheck, Outcome, always_held
from kupe.server.reconciler.policy import RetryPolicy

log = structlog.get_logger("kupe.reconciler")


@dataclass(frozen=True)
class TenantItem:
    id: str
    name: str
    resource_version: int
    failure_count: int
    lease: str


def _make(row: Sequence[Any], lease: str) -> TenantItem:
    tenant_id, name, resource_version, failure_count = row
    return TenantItem(tenant_id, name, resource_version, failure_count, lease)


TENANT_LEASES: Leases[TenantItem] = Leases(
    Tenant,
    Loader((Tenant.id, Tenant.name, Tenant.resource_version, Tenant.failure_count), _make),
    live=(
        Tenant.removed_at.is_(None),
        Tenant.phase == TenantPhase.TERMINATING,
        Tenant.next_reconcile_at.is_not(None),
    ),
)


@dataclass(frozen=True)
class TenantStatusUpdate:
    """Remove the tenant now, or wait for `clusters` more to go."""

    remove: bool
    clusters: int = 0


class TenantKind:
    """Tenants being deleted."""

    name = "tenant"
    leases = TENANT_LEASES

    def __init__(self, db: Database, clock: Clock, policy: RetryPolicy) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy

    async def reconcile(
        self, item: TenantItem, check_lease: LeaseCheck = always_held
    ) -> Outcome[TenantStatusUpdate]:
        async with self.db.read() as session:
            live = (await ClusterRepository(session, item.id).usage()).clusters
        if live:
            return Outcome(TenantStatusUpdate(False, live), self.policy.poll_seconds)
        return Outcome(TenantStatusUpdate(True), self.policy.poll_seconds)

    def changes(self, item: TenantItem, outcome: Outcome[TenantStatusUpdate]) -> bool:
        return outcome.status.remove

    async def write(
        self,
        session: AsyncSession,
        item: TenantItem,
        outcome: Outcome[TenantStatusUpdate],
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        if not outcome.status.remove:
            return await self.leases.finish(session, item, values={}, next_at=next_at, now=now)
        values: dict[str, Any] = {"removed_at": now}
        if resource_version is not None:
            values["resource_version"] = resource_version
        # Removed only if no cluster was created meanwhile (the tenant is Terminating, so
        # none can be) and the lease is still ours.
        result = await self.leases.finish(session, item, values=values, next_at=next_at, now=now)
        if result is FinishResult.APPLIED:
            await TenantRepository(session).forget_access(item.id)
            # The platform fee stops with the tenant; its invoices are still billed.
            await Ledger(session).plan_ended(item.id, at=now)
            await Ledger(session).touch(item.id, now)
        return result

    def report(
        self, item: TenantItem, outcome: Outcome[TenantStatusUpdate], result: FinishResult
    ) -> None:
        if result is FinishResult.APPLIED and outcome.status.remove:
            log.info("tenant.removed", tenant=item.name)
