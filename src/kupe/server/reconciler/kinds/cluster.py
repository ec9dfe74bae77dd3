"""The cluster kind: observe the infrastructure, then converge it towards the spec.

Level-triggered and idempotent: it decides from what it sees now, never from what it did last
time, so running it twice or after a crash is harmless. Settled clusters are also looked at in
bulk (`resync`): one provider call observes many, and those whose observation would change
nothing only get their next look scheduled; the others go through `reconcile`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.phases import PROVISIONING_PHASES, ClusterPhase
from kupe.server.db.leases import FinishResult
from kupe.server.db.models import Cluster
from kupe.server.db.repositories.ledger import Ledger
from kupe.server.metrics import Metrics
from kupe.server.providers.base import (
    InfraPhase,
    PermanentProviderError,
    Provider,
    ProviderError,
    TransientProviderError,
)
from kupe.server.reconciler.kind import LeaseCheck, Outcome, Result, Resync, always_held
from kupe.server.reconciler.kinds.cluster_item import CLUSTER_LEASES, ClusterItem
from kupe.server.reconciler.kinds.cluster_rules import (
    ClusterStatusUpdate,
    failed,
    observed,
    refused,
    retrying,
)
from kupe.server.reconciler.policy import RetryPolicy

log = structlog.get_logger("kupe.reconciler")
ClusterOutcome = Outcome[ClusterStatusUpdate]


class ClusterKind:
    """Clusters, reconciled through the provider."""

    name = "cluster"
    leases = CLUSTER_LEASES

    def __init__(
        self, provider: Provider, clock: Clock, policy: RetryPolicy, metrics: Metrics
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.policy = policy
        self.metrics = metrics

    async def reconcile(
        self, item: ClusterItem, check_lease: LeaseCheck = always_held
    ) -> ClusterOutcome:
        """Observe one cluster and converge it. `check_lease` is called before every change
        to the infrastructure, so a worker that lost its lease never mutates what a new owner
        is working on."""
        now = self.clock.now()
        try:
            if item.deleting:
                return await self._tear_down(item, now, check_lease)
            if item.phase is ClusterPhase.FAILED:
                return Outcome(ClusterStatusUpdate(item.failure_count), self.policy.resync_delay())
            return await self._converge(item, now, check_lease)
        except TransientProviderError as exc:
            return self._transient(item, exc, now)
        except PermanentProviderError as exc:
            return self._permanent(item, exc, now)

    async def resync(self, items: Sequence[ClusterItem]) -> Resync[ClusterItem]:
        """Observe settled clusters with one provider call. A cluster is unchanged when
        `reconcile` would touch no infrastructure, record exactly what is recorded already and
        look again only at the next resync; everything else (drift, a failed observation,
        anything not settled) is left to `reconcile`, which observes it afresh."""
        try:
            states = await self.provider.observe_many([item.id for item in items])
        except ProviderError:
            return Resync(self.policy.resync_delay(), drifted=list(items))
        now = self.clock.now()
        result: Resync[ClusterItem] = Resync(self.policy.resync_delay())
        for item in items:
            state = states.get(item.id)
            spec = item.spec
            if (
                state is not None
                and state.matches(spec)
                and not item.deleting
                and item.phase is not ClusterPhase.FAILED
            ):
                update, settled = observed(item, spec, state, now)
                if settled and not update.changes(item):
                    result.unchanged.append(item)
                    continue
            result.drifted.append(item)
        return result

    def changes(self, item: ClusterItem, outcome: ClusterOutcome) -> bool:
        return outcome.status.changes(item)

    async def write(
        self,
        session: AsyncSession,
        item: ClusterItem,
        outcome: ClusterOutcome,
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        """Only while the lease is held, the generation acted on is current, and a delete was
        not requested meanwhile (or withdrawn: it cannot be)."""
        values = outcome.status.columns(now)
        if resource_version is not None:
            values["resource_version"] = resource_version
        deleting_now = (
            Cluster.deletion_requested_at.is_not(None)
            if item.deleting
            else Cluster.deletion_requested_at.is_(None)
        )
        result = await self.leases.finish(
            session,
            item,
            values=values,
            next_at=next_at,
            now=now,
            guard=(Cluster.generation == item.generation, deleting_now),
        )
        if result is FinishResult.APPLIED:
            await self._meter(session, item, outcome.status, now)
        return result

    @staticmethod
    async def _meter(
        session: AsyncSession, item: ClusterItem, status: ClusterStatusUpdate, now: datetime
    ) -> None:
        """Record in the billing ledger, in the same transaction, what this outcome changed of
        the allocation billed: none once teardown completed; the generation's resources once
        it is applied (a resize counts from then, not from its request)."""
        ledger = Ledger(session)
        if status.removed:
            await ledger.cluster_removed(item.id, at=now)
        elif status.observed_generation == item.generation != item.observed_generation:
            await ledger.allocation_applied(
                item.id,
                cpu_millis=item.cpu_millis,
                memory_bytes=item.memory_bytes,
                storage_bytes=item.storage_bytes,
                at=now,
            )

    def report(self, item: ClusterItem, outcome: ClusterOutcome, result: FinishResult) -> None:
        if result is not FinishResult.APPLIED:
            return
        status = outcome.status
        if status.phase is not None and status.phase != item.phase:
            self.metrics.phase_transitions.labels(item.phase, status.phase).inc()
            log.info(
                "cluster.phase_changed",
                tenant=item.tenant,
                cluster=item.name,
                from_phase=item.phase,
                to_phase=status.phase,
            )
        if status.removed:
            log.info("cluster.removed", tenant=item.tenant, cluster=item.name)
        if outcome.error:
            log.warning(
                "cluster.provider_error",
                tenant=item.tenant,
                cluster=item.name,
                result=outcome.result,
                error=outcome.error,
            )

    # -- steps -------------------------------------------------------------------------------

    async def _tear_down(
        self, item: ClusterItem, now: datetime, check_lease: LeaseCheck
    ) -> ClusterOutcome:
        check_lease()
        state = await self.provider.delete(item.id)
        if state is None:
            return Outcome(
                ClusterStatusUpdate(failure_count=0, removed=True), self.policy.resync_delay()
            )
        return Outcome(ClusterStatusUpdate(failure_count=0), self.policy.poll_seconds)

    async def _converge(
        self, item: ClusterItem, now: datetime, check_lease: LeaseCheck
    ) -> ClusterOutcome:
        spec = item.spec
        state = await self.provider.observe(item.id)
        unhealthy = state is not None and state.phase is InfraPhase.UNHEALTHY
        if unhealthy and item.phase not in (ClusterPhase.DEGRADED, *PROVISIONING_PHASES):
            # A serving cluster stopped serving: record Degraded first (clients and metrics
            # see it), then the next look tries to bring it back.
            assert state is not None
            update, _ = observed(item, spec, state, now)
            return Outcome(update, self.policy.poll_seconds)
        # Unhealthy is ensured even when it matches: that is how a provider brings dead parts
        # of a cluster back (a provider with nothing to restart does nothing).
        if (
            state is None
            or state.phase is InfraPhase.UNHEALTHY
            or (not state.matches(spec) and state.phase in (InfraPhase.CREATING, InfraPhase.READY))
        ):
            check_lease()
            state = await self.provider.ensure(spec)
        update, settled = observed(item, spec, state, now)
        delay = self.policy.resync_delay() if settled else self.policy.poll_seconds
        return Outcome(update, delay)

    def _transient(
        self, item: ClusterItem, exc: TransientProviderError, now: datetime
    ) -> ClusterOutcome:
        failures = item.failure_count + 1
        provisioning = item.phase in PROVISIONING_PHASES and not item.deleting
        if provisioning and failures >= self.policy.max_transient_failures:
            reason = f"gave up after {failures} attempts: {exc}"
            return self._fail(item, reason, now, Result.RETRIES_EXHAUSTED)
        return Outcome(
            retrying(item, failures, str(exc), now),
            self.policy.backoff(failures),
            result=Result.RETRY,
            error=str(exc),
        )

    def _permanent(
        self, item: ClusterItem, exc: PermanentProviderError, now: datetime
    ) -> ClusterOutcome:
        failures = item.failure_count + 1
        if item.deleting:
            # Teardown must finish eventually: keep trying, slowly.
            update = ClusterStatusUpdate(failure_count=failures)
        elif item.phase not in PROVISIONING_PHASES:
            update = refused(item, failures, str(exc), now)
        else:
            return self._fail(item, str(exc), now, Result.FAILED)
        return Outcome(update, self.policy.backoff(failures), result=Result.RETRY, error=str(exc))

    def _fail(
        self, item: ClusterItem, reason: str, now: datetime, result: Result
    ) -> ClusterOutcome:
        return Outcome(
            failed(item, reason, now), self.policy.resync_delay(), result=result, error=reason
        )
