"""The alerting kind: deliver a tenant's effective Alertmanager configuration to the alert
backend, and take it away once the tenant is removed.

Level-triggered: every pass pushes what is stored now (pushing the same configuration again
changes nothing), so a crash at any moment is followed by a pass that converges. The outcome
is written only for the generation that was pushed; a write meanwhile means another pass.
Credentials pass through memory only, to the backend: never into logs or errors. A tenant
being deleted is served nothing from its next pass (at most `resync_seconds` later); once it
is removed, its row is too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.phases import TenantPhase
from kupe.server.alertmanager.backends import AlertBackend, BackendError, TenantTarget
from kupe.server.alertmanager.documents import open_documents
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult, Leases, Loader
from kupe.server.db.models import AlertmanagerConfig, Tenant
from kupe.server.db.repositories.alerting import AlertingRepository
from kupe.server.reconciler.kind import LeaseCheck, Outcome, Result, always_held
from kupe.server.reconciler.policy import RetryPolicy
from kupe.server.sealing import Sealer, SealingError

log = structlog.get_logger("kupe.reconciler")


@dataclass(frozen=True)
class AlertingItem:
    id: str
    tenant_id: str
    tenant: str
    tenant_removed: bool
    # Terminating or removed: its alerts go nowhere any more.
    tenant_closed: bool
    generation: int
    observed_generation: int
    push_error: str | None
    failure_count: int
    resource_version: int
    lease: str


_A = cast(Table, AlertmanagerConfig.__table__).c
_COLUMNS = (
    _A.id,
    _A.tenant_id,
    _A.generation,
    _A.observed_generation,
    _A.push_error,
    _A.failure_count,
    _A.resource_version,
    select(Tenant.name).where(Tenant.id == AlertmanagerConfig.tenant_id).scalar_subquery(),
    select(Tenant.removed_at).where(Tenant.id == AlertmanagerConfig.tenant_id).scalar_subquery(),
    select(Tenant.phase).where(Tenant.id == AlertmanagerConfig.tenant_id).scalar_subquery(),
)


def _make(row: Sequence[Any], lease: str) -> AlertingItem:
    item_id, tenant_id, generation, observed, error, failures, version, tenant, removed, phase = row
    return AlertingItem(
        item_id,
        tenant_id,
        tenant,
        removed is not None,
        removed is not None or phase == TenantPhase.TERMINATING,
        generation,
        observed,
        error,
        failures,
        version,
        lease,
    )


ALERTING_LEASES: Leases[AlertingItem] = Leases(
    AlertmanagerConfig,
    Loader(_COLUMNS, _make),
    live=(AlertmanagerConfig.removed_at.is_(None),),
)


@dataclass(frozen=True)
class PushOutcome:
    """What one pass did: the generation now served, or why not."""

    generation: int
    error: str | None = None
    removed: bool = False
    failures: int = 0


class AlertingKind:
    """Tenants' alerting configurations, pushed to the alert backend."""

    name = "alerting"
    leases = ALERTING_LEASES

    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        backend: AlertBackend,
        clock: Clock,
        policy: RetryPolicy,
        resync_seconds: float,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.backend = backend
        self.clock = clock
        self.policy = policy
        self.resync_seconds = resync_seconds

    async def reconcile(
        self, item: AlertingItem, check_lease: LeaseCheck = always_held
    ) -> Outcome[PushOutcome]:
        target = TenantTarget(item.tenant_id, item.tenant)
        try:
            config: dict[str, Any] | None = None
            if not item.tenant_closed:
                async with self.db.read() as session:
                    stored = await AlertingRepository(session, item.tenant_id).stored()
                config = open_documents(self.sealer, stored).effective()
            check_lease()
            await self.backend.push(target, config)
        except SealingError as exc:
            return self._failed(item, str(exc), transient=False)
        except BackendError as exc:
            return self._failed(item, str(exc), transient=exc.transient)
        done = PushOutcome(item.generation, removed=item.tenant_removed)
        return Outcome(done, self.policy.jitter(self.resync_seconds))

    def _failed(self, item: AlertingItem, error: str, *, transient: bool) -> Outcome[PushOutcome]:
        failures = item.failure_count + 1
        update = PushOutcome(item.observed_generation, error=error, failures=failures)
        if transient:
            return Outcome(update, self.policy.backoff(failures), result=Result.RETRY, error=error)
        return Outcome(
            update, self.policy.jitter(self.resync_seconds), result=Result.FAILED, error=error
        )

    def changes(self, item: AlertingItem, outcome: Outcome[PushOutcome]) -> bool:
        status = outcome.status
        return (
            status.generation != item.observed_generation
            or status.error != item.push_error
            or status.removed
        )

    async def write(
        self,
        session: AsyncSession,
        item: AlertingItem,
        outcome: Outcome[PushOutcome],
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        status = outcome.status
        values: dict[str, Any] = {
            "observed_generation": status.generation,
            "push_error": status.error,
            "failure_count": status.failures,
        }
        if status.error is None:
            values["pushed_at"] = now
        if status.removed:
            values["removed_at"] = now
        # Not the document versions' counter: the ETags of the documents must not move
        # because the backend caught up.
        return await self.leases.finish(
            session,
            item,
            values=values,
            next_at=next_at,
            now=now,
            guard=(AlertmanagerConfig.generation == item.generation,),
        )

    def report(
        self, item: AlertingItem, outcome: Outcome[PushOutcome], result: FinishResult
    ) -> None:
        if result is not FinishResult.APPLIED:
            return
        status = outcome.status
        if status.error is not None:
            log.warning("alerting.push_failed", tenant=item.tenant, error=status.error)
        elif status.removed:
            log.info("alerting.removed", tenant=item.tenant)
        elif status.generation != item.observed_generation:
            log.info("alerting.pushed", tenant=item.tenant, generation=status.generation)
