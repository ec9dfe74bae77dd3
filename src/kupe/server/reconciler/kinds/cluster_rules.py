"""The cluster controller's decisions, as pure functions of what was read and what the
infrastructure reports: which phase, which conditions, what to record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kupe.core.conditions import Condition, set_condition
from kupe.core.phases import PROVISIONING_PHASES, ClusterPhase
from kupe.server.providers.base import ClusterSpec, InfraPhase, InfraState
from kupe.server.reconciler.kinds.cluster_item import ClusterItem

PHASE_OF = {
    InfraPhase.CREATING: ClusterPhase.PROVISIONING,
    InfraPhase.UPDATING: ClusterPhase.UPGRADING,
    InfraPhase.MIGRATING: ClusterPhase.MIGRATING,
    InfraPhase.READY: ClusterPhase.RUNNING,
    InfraPhase.UNHEALTHY: ClusterPhase.DEGRADED,
}
_READY_MESSAGES = {
    ClusterPhase.PROVISIONING: "Waiting for the control plane",
    ClusterPhase.RUNNING: "The API server is serving",
    ClusterPhase.MIGRATING: "Moving to a highly available control plane; the API server keeps "
    "serving",
    ClusterPhase.DEGRADED: "The provider reports the cluster unhealthy",
}


@dataclass(frozen=True)
class Infrastructure:
    """What the cluster's status shows of its infrastructure once it is provisioned."""

    kubernetes_version: str
    endpoint: str
    ca_certificate: str
    replicas_ready: int
    replicas_desired: int

    @classmethod
    def of(cls, state: InfraState) -> Infrastructure:
        return cls(
            state.kubernetes_version,
            state.endpoint,
            state.ca_certificate,
            state.control_plane_replicas_ready,
            state.control_plane_replicas_desired,
        )

    def shown(self) -> tuple[str, str, str, int, int]:
        return (
            self.kubernetes_version,
            self.endpoint,
            self.ca_certificate,
            self.replicas_ready,
            self.replicas_desired,
        )


@dataclass(frozen=True)
class ClusterStatusUpdate:
    """What one reconciliation records for a cluster; None fields stay as they are."""

    failure_count: int
    phase: ClusterPhase | None = None
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] | None = None
    infrastructure: Infrastructure | None = None
    removed: bool = False

    def columns(self, now: datetime) -> dict[str, Any]:
        """The row's columns this update writes."""
        values: dict[str, Any] = {"failure_count": self.failure_count}
        if self.phase is not None:
            values["phase"] = self.phase
        if self.observed_generation is not None:
            values["observed_generation"] = self.observed_generation
        if self.conditions is not None:
            values["conditions"] = list(self.conditions)
        if self.infrastructure is not None:
            infra = self.infrastructure
            values.update(
                kubernetes_version=infra.kubernetes_version,
                endpoint=infra.endpoint,
                ca_certificate=infra.ca_certificate,
                ha_replicas_ready=infra.replicas_ready,
                ha_replicas_desired=infra.replicas_desired,
            )
        if self.removed:
            values["removed_at"] = now
        return values

    def changes(self, item: ClusterItem) -> bool:
        """Whether recording this changes anything a client sees of `item`."""
        infra = self.infrastructure
        return (
            self.removed
            or (self.phase is not None and self.phase != item.phase)
            or (
                self.observed_generation is not None
                and self.observed_generation != item.observed_generation
            )
            or (self.conditions is not None and self.conditions != item.conditions)
            or (
                infra is not None
                and infra.shown()
                != (
                    item.kubernetes_version,
                    item.endpoint,
                    item.ca_certificate,
                    item.ha_replicas_ready,
                    item.ha_replicas_desired,
                )
            )
        )


def observed(
    item: ClusterItem, spec: ClusterSpec, state: InfraState, now: datetime
) -> tuple[ClusterStatusUpdate, bool]:
    """The status to record for what the infrastructure reports, and whether the cluster
    has settled (nothing in progress: the next look is the periodic resync)."""
    phase = PHASE_OF.get(state.phase, item.phase)
    if phase is ClusterPhase.DEGRADED and item.phase in PROVISIONING_PHASES:
        phase = ClusterPhase.PROVISIONING  # never was Running, so it cannot have degraded
    provisioned = state.phase is not InfraPhase.CREATING
    up_to_date = state.phase is InfraPhase.READY and state.matches(spec)
    generation = item.generation if up_to_date else item.observed_generation
    conditions = set_condition(
        item.conditions,
        "Provisioned",
        provisioned,
        "Provisioned" if provisioned else "Provisioning",
        "Infrastructure is provisioned"
        if provisioned
        else state.message or "The provider is building it",
        now,
    )
    ready = phase in (ClusterPhase.RUNNING, ClusterPhase.UPGRADING, ClusterPhase.MIGRATING)
    message = (
        f"Upgrading to {spec.version}; the API server keeps serving"
        if phase is ClusterPhase.UPGRADING
        else _READY_MESSAGES.get(phase, str(phase))
    )
    if state.message and provisioned:
        message = f"{message}: {state.message}"
    conditions = set_condition(conditions, "Ready", ready, phase, message, now)
    applied = generation == item.generation
    conditions = set_condition(
        conditions,
        "UpToDate",
        applied,
        "UpToDate" if applied else "Progressing",
        f"Generation {generation} is applied"
        if applied
        else f"Applying generation {item.generation}",
        now,
    )
    infrastructure = Infrastructure.of(state) if provisioned else None
    update = ClusterStatusUpdate(
        failure_count=0,
        phase=phase,
        observed_generation=generation,
        conditions=tuple(conditions),
        infrastructure=infrastructure,
    )
    return update, phase in (ClusterPhase.RUNNING, ClusterPhase.DEGRADED) and up_to_date


def retrying(item: ClusterItem, failures: int, error: str, now: datetime) -> ClusterStatusUpdate:
    """A transient failure, to be retried: counted, and shown while provisioning."""
    if item.phase not in PROVISIONING_PHASES or item.deleting:
        return ClusterStatusUpdate(failure_count=failures)
    conditions = set_condition(
        item.conditions,
        "Provisioned",
        False,
        "ProviderError",
        f"Attempt {failures} failed, retrying: {error}",
        now,
    )
    return ClusterStatusUpdate(failure_count=failures, conditions=tuple(conditions))


def failed(item: ClusterItem, reason: str, now: datetime) -> ClusterStatusUpdate:
    """Provisioning failed for good: phase Failed, with the reason in the conditions."""
    conditions = set_condition(
        item.conditions, "Provisioned", False, "ProvisioningFailed", reason, now
    )
    conditions = set_condition(conditions, "Ready", False, ClusterPhase.FAILED, reason, now)
    return ClusterStatusUpdate(
        failure_count=item.failure_count,
        phase=ClusterPhase.FAILED,
        conditions=tuple(conditions),
    )


def refused(item: ClusterItem, failures: int, reason: str, now: datetime) -> ClusterStatusUpdate:
    """The provider refused a change to a cluster that serves: it keeps serving what it ran
    before (never Failed: that is for provisioning), and UpToDate says why."""
    conditions = set_condition(item.conditions, "UpToDate", False, "ChangeRefused", reason, now)
    return ClusterStatusUpdate(failure_count=failures, conditions=tuple(conditions))
