"""The billing ledger: what each cluster held and each tenant's plan, over time.

Written in the same transaction as the change it records, at the single places those changes
are written: a cluster's creation (ClusterService.create), a resize once the reconciler has
applied it and a deletion once teardown completed (the cluster kind's write), a plan change
(TenantService) and a tenant's removal (the tenant kind's write). Never recomputed from
current state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select, update

from kupe.server.db.models import Invoice, PlanPeriod, UsageInterval
from kupe.server.db.repositories.base import Repository


class Ledger(Repository):
    # -- clusters ----------------------------------------------------------------------------

    async def cluster_created(
        self,
        tenant_id: str,
        cluster_id: str,
        *,
        cpu_millis: int,
        memory_bytes: int,
        storage_bytes: int,
        at: datetime,
    ) -> None:
        self.session.add(
            UsageInterval(
                tenant_id=tenant_id,
                cluster_id=cluster_id,
                cpu_millis=cpu_millis,
                memory_bytes=memory_bytes,
                storage_bytes=storage_bytes,
                started_at=at,
            )
        )
        await self.session.flush()
        await self.touch(tenant_id, at)

    async def allocation_applied(
        self,
        cluster_id: str,
        *,
        cpu_millis: int,
        memory_bytes: int,
        storage_bytes: int,
        at: datetime,
    ) -> bool:
        """The cluster now holds this allocation: close the open interval and open another,
        unless it already held exactly this. Returns whether anything was recorded."""
        current = await self._open(cluster_id)
        if current is None:
            return False
        held = (current.cpu_millis, current.memory_bytes, current.storage_bytes)
        if held == (cpu_millis, memory_bytes, storage_bytes):
            return False
        current.ended_at = at
        await self.session.flush()
        self.session.add(
            UsageInterval(
                tenant_id=current.tenant_id,
                cluster_id=cluster_id,
                cpu_millis=cpu_millis,
                memory_bytes=memory_bytes,
                storage_bytes=storage_bytes,
                started_at=at,
            )
        )
        await self.session.flush()
        await self.touch(current.tenant_id, at)
        return True

    async def cluster_removed(self, cluster_id: str, *, at: datetime) -> None:
        current = await self._open(cluster_id)
        if current is None:
            return
        current.ended_at = at
        await self.session.flush()
        await self.touch(current.tenant_id, at)

    async def _open(self, cluster_id: str) -> UsageInterval | None:
        stmt = select(UsageInterval).where(
            UsageInterval.cluster_id == cluster_id, UsageInterval.ended_at.is_(None)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    # -- plans -------------------------------------------------------------------------------

    async def plan_started(
        self, tenant_id: str, plan: str, platform_fee: Decimal, *, at: datetime
    ) -> None:
        """The tenant is on `plan` from `at` (closing the plan it was on)."""
        await self.plan_ended(tenant_id, at=at)
        self.session.add(
            PlanPeriod(
                tenant_id=tenant_id, plan=plan, platform_fee=f"{platform_fee:f}", started_at=at
            )
        )
        await self.session.flush()
        await self.touch(tenant_id, at)

    async def plan_ended(self, tenant_id: str, *, at: datetime) -> None:
        await self.session.execute(
            update(PlanPeriod)
            .where(PlanPeriod.tenant_id == tenant_id, PlanPeriod.ended_at.is_(None))
            .values(ended_at=at)
            .execution_options(synchronize_session=False)
        )

    # -- what a statement is computed from ---------------------------------------------------

    async def intervals(
        self, tenant_id: str, start: datetime, end: datetime
    ) -> Sequence[UsageInterval]:
        stmt = select(UsageInterval).where(
            UsageInterval.tenant_id == tenant_id,
            UsageInterval.started_at < end,
            or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > start),
        )
        return (await self.session.scalars(stmt)).all()

    async def plans(self, tenant_id: str, start: datetime, end: datetime) -> Sequence[PlanPeriod]:
        stmt = select(PlanPeriod).where(
            PlanPeriod.tenant_id == tenant_id,
            PlanPeriod.started_at < end,
            or_(PlanPeriod.ended_at.is_(None), PlanPeriod.ended_at > start),
        )
        return (await self.session.scalars(stmt)).all()

    # -- the estimate ------------------------------------------------------------------------

    async def touch(self, tenant_id: str, at: datetime) -> None:
        """Have the tenant's draft invoices looked at now: their estimate changed. A draft
        being estimated right now (leased) is moved too, so that the estimate's write, which
        requires the look it was claimed for, is refused and the draft looked at again."""
        await self.session.execute(
            update(Invoice)
            .where(
                Invoice.tenant_id == tenant_id,
                Invoice.phase == "Draft",
                or_(Invoice.next_reconcile_at > at, Invoice.lease_owner.is_not(None)),
            )
            .values(next_reconcile_at=at)
            .execution_options(synchronize_session=False)
        )
