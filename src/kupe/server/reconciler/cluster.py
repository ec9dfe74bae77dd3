"""The cluster controller: observe the infrastructure, then converge it towards the spec.

Level-triggered and idempotent: it decides from what it sees now, never from what it did
last time, so running it twice or after a crash is harmless.

Settled clusters are also looked at in bulk (`resync`): one provider call observes many, and
those whose observation would change nothing only get their next look scheduled; the others go
through `reconcile` like any claimed cluster.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kupe.core.clock import Clock
from kupe.server.db.reconcile import WorkItem
from kupe.server.providers.base import (
    ClusterSpec,
    InfraPhase,
    InfraState,
    PermanentProviderError,
    Provider,
    ProviderError,
    TransientProviderError,
)
from kupe.server.services.conditions import set_condition
from kupe.server.settings import Settings

_PHASE_OF = {
    InfraPhase.CREATING: "Provisioning",
    InfraPhase.UPDATING: "Upgrading",
    InfraPhase.READY: "Running",
    InfraPhase.UNHEALTHY: "Degraded",
}


class LeaseLost(Exception):
    """The claim on a cluster ran out: someone else may own it now, so touch nothing."""


def _always_held() -> None:
    return None


@dataclass
class Outcome:
    """What to record for one cluster, and when to look at it again."""

    values: dict[str, Any]
    requeue_after: float
    result: str = "ok"
    error: str | None = field(default=None)


@dataclass
class Resync:
    """The bulk look at settled clusters: which are as recorded, and which need `reconcile`."""

    # Only their next resync, `after` seconds from now, is to be recorded. One draw of the
    # jitter for the batch: its clusters are swept together again anyway, and other batches
    # draw other times.
    after: float
    unchanged: list[WorkItem] = field(default_factory=list)
    drifted: list[WorkItem] = field(default_factory=list)


def _spec(item: WorkItem) -> ClusterSpec:
    return ClusterSpec(
        id=item.id,
        tenant=item.tenant,
        name=item.name,
        type=item.type,
        version=item.version,
        cpu_millis=item.cpu_millis,
        memory_bytes=item.memory_bytes,
        storage_bytes=item.storage_bytes,
    )


class ClusterController:
    def __init__(
        self,
        provider: Provider,
        clock: Clock,
        settings: Settings,
        rng: random.Random | None = None,
    ) -> None:
        self.provider = provider
        self.clock = clock
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    async def reconcile(
        self, item: WorkItem, check_lease: Callable[[], None] = _always_held
    ) -> Outcome:
        """Observe one cluster and converge it. `check_lease` raises LeaseLost when the claim
        may have run out; it is called before every change to the infrastructure, so a worker
        that lost its lease never mutates what a new owner is working on."""
        now = self.clock.now()
        try:
            if item.deleting:
                return await self._tear_down(item, now, check_lease)
            if item.phase == "Failed":
                return Outcome({}, self._resync_delay())
            return await self._converge(item, now, check_lease)
        except TransientProviderError as exc:
            return self._transient(item, exc, now)
        except PermanentProviderError as exc:
            return self._permanent(item, exc, now)

    async def resync(self, items: Sequence[WorkItem]) -> Resync:
        """Observe settled clusters with one provider call. A cluster is unchanged when
        `reconcile` would touch no infrastructure, record exactly what is recorded already and
        look again only at the next resync; everything else (drift, a failed observation,
        anything not settled) is left to `reconcile`, which observes it afresh."""
        try:
            states = await self.provider.observe_many([item.id for item in items])
        except ProviderError:
            return Resync(self._resync_delay(), drifted=list(items))
        now = self.clock.now()
        result = Resync(self._resync_delay())
        for item in items:
            state = states.get(item.id)
            spec = _spec(item)
            if (
                state is not None
                and state.matches(spec)
                and not item.deleting
                and item.phase != "Failed"
            ):
                values, settled = self._observed(item, spec, state, now)
                if settled and all(getattr(item, key) == value for key, value in values.items()):
                    result.unchanged.append(item)
                    continue
            result.drifted.append(item)
        return result

    async def _tear_down(
        self, item: WorkItem, now: datetime, check_lease: Callable[[], None]
    ) -> Outcome:
        check_lease()
        state = await self.provider.delete(item.id)
        if state is None:
            return Outcome({"removed_at": now, "failure_count": 0}, self._resync_delay())
        return Outcome({"failure_count": 0}, self.settings.reconcile_poll_seconds)

    async def _converge(
        self, item: WorkItem, now: datetime, check_lease: Callable[[], None]
    ) -> Outcome:
        spec = _spec(item)
        state = await self.provider.observe(item.id)
        if state is None or (
            not state.matches(spec)
            and state.phase in (InfraPhase.CREATING, InfraPhase.READY, InfraPhase.UNHEALTHY)
        ):
            check_lease()
            state = await self.provider.ensure(spec)
        return self._status(item, spec, state, now)

    def _status(
        self, item: WorkItem, spec: ClusterSpec, state: InfraState, now: datetime
    ) -> Outcome:
        values, settled = self._observed(item, spec, state, now)
        delay = self._resync_delay() if settled else self.settings.reconcile_poll_seconds
        return Outcome(values, delay)

    def _observed(
        self, item: WorkItem, spec: ClusterSpec, state: InfraState, now: datetime
    ) -> tuple[dict[str, Any], bool]:
        """The status to record for what the infrastructure reports, and whether the
        cluster has settled (nothing in progress: the next look is the periodic resync)."""
        phase = _PHASE_OF.get(state.phase, item.phase)
        if phase == "Degraded" and item.phase in ("Pending", "Provisioning"):
            phase = "Provisioning"  # never was Running, so it cannot have degraded
        provisioned = state.phase is not InfraPhase.CREATING
        up_to_date = state.phase is InfraPhase.READY and state.matches(spec)
        observed = item.generation if up_to_date else item.observed_generation
        conditions = set_condition(
            item.conditions,
            "Provisioned",
            provisioned,
            "Provisioned" if provisioned else "Provisioning",
            "Infrastructure is provisioned" if provisioned else "The provider is building it",
            now,
        )
        ready = phase in ("Running", "Upgrading")
        conditions = set_condition(
            conditions,
            "Ready",
            ready,
            phase,
            {
                "Provisioning": "Waiting for the control plane",
                "Running": "The API server is serving",
                "Upgrading": f"Upgrading to {spec.version}; the API server keeps serving",
                "Degraded": "The provider reports the cluster unhealthy",
            }.get(phase, phase),
            now,
        )
        conditions = set_condition(
            conditions,
            "UpToDate",
            observed == item.generation,
            "UpToDate" if observed == item.generation else "Progressing",
            f"Generation {observed} is applied"
            if observed == item.generation
            else f"Applying generation {item.generation}",
            now,
        )
        values: dict[str, Any] = {
            "phase": phase,
            "observed_generation": observed,
            "conditions": conditions,
            "failure_count": 0,
        }
        if provisioned:
            values.update(
                kubernetes_version=state.kubernetes_version,
                endpoint=state.endpoint,
                ca_certificate=state.ca_certificate,
            )
        return values, phase in ("Running", "Degraded") and up_to_date

    def _transient(self, item: WorkItem, exc: TransientProviderError, now: datetime) -> Outcome:
        failures = item.failure_count + 1
        provisioning = item.phase in ("Pending", "Provisioning")
        if provisioning and not item.deleting and failures >= self.settings.max_transient_failures:
            return self._fail(item, f"gave up after {failures} attempts: {exc}", now, "retry")
        values: dict[str, Any] = {"failure_count": failures}
        if provisioning and not item.deleting:
            values["conditions"] = set_condition(
                item.conditions,
                "Provisioned",
                False,
                "ProviderError",
                f"Attempt {failures} failed, retrying: {exc}",
                now,
            )
        return Outcome(values, self._backoff(failures), result="retry", error=str(exc))

    def _permanent(self, item: WorkItem, exc: PermanentProviderError, now: datetime) -> Outcome:
        if item.deleting:
            # Teardown must finish eventually: keep trying, slowly.
            failures = item.failure_count + 1
            return Outcome(
                {"failure_count": failures},
                self._backoff(failures),
                result="retry",
                error=str(exc),
            )
        return self._fail(item, str(exc), now, "failed")

    def _fail(self, item: WorkItem, reason: str, now: datetime, result: str) -> Outcome:
        conditions = set_condition(
            item.conditions, "Provisioned", False, "ProvisioningFailed", reason, now
        )
        conditions = set_condition(conditions, "Ready", False, "Failed", reason, now)
        return Outcome(
            {"phase": "Failed", "conditions": conditions, "failure_count": item.failure_count},
            self._resync_delay(),
            result="failed",
            error=reason,
        )

    def _backoff(self, failures: int) -> float:
        base = self.settings.retry_base_seconds * 2 ** min(failures - 1, 30)
        return float(min(self.settings.retry_max_seconds, base) * self._rng.uniform(0.5, 1.0))

    def _resync_delay(self) -> float:
        return float(self.settings.resync_seconds * self._rng.uniform(0.8, 1.0))
