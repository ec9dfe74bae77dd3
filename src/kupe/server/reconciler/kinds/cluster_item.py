"""A cluster as the reconciler reads it, and the statements that lease and load it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, select

from kupe.core.conditions import Condition
from kupe.core.phases import ClusterPhase
from kupe.server.db.leases import Leases, Loader
from kupe.server.db.models import Cluster, Tenant
from kupe.server.providers.base import ClusterSpec


@dataclass(frozen=True)
class ClusterItem:
    """A cluster as the reconciler read it: when it took the lease, or when the sweep read it
    (without a lease) to resync it in bulk."""

    id: str
    tenant: str
    name: str
    type: str
    version: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    alerts: str
    high_availability: bool
    generation: int
    observed_generation: int
    phase: ClusterPhase
    deleting: bool
    kubernetes_version: str | None
    endpoint: str | None
    ca_certificate: str | None
    ha_replicas_ready: int
    ha_replicas_desired: int
    conditions: tuple[Condition, ...]
    failure_count: int
    resource_version: int
    # The token it was claimed under; empty when the sweep read it without a claim.
    lease: str

    @property
    def spec(self) -> ClusterSpec:
        """What the platform wants this cluster to be."""
        return ClusterSpec(
            id=self.id,
            tenant=self.tenant,
            name=self.name,
            type=self.type,
            version=self.version,
            cpu_millis=self.cpu_millis,
            memory_bytes=self.memory_bytes,
            storage_bytes=self.storage_bytes,
            alerts=self.alerts,
            high_availability=self.high_availability,
        )


def canonical_alerts(alerts: dict[str, Any] | None) -> str:
    """The alerts document as the provider sees it: canonical JSON, "" when there is none."""
    if not alerts:
        return ""
    return json.dumps(alerts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_C = cast(Table, Cluster.__table__).c
# Plain table columns, in the order `_make` unpacks them (Core rows, no ORM on the way: the
# sweep reads hundreds a second). Not `x IS NOT NULL`: SQLite 3.40 gets that wrong in a
# RETURNING clause, so `deleting` is worked out in Python.
_COLUMNS = (
    _C.id,
    _C.name,
    _C.type,
    _C.version,
    _C.cpu_millis,
    _C.memory_bytes,
    _C.storage_bytes,
    _C.alerts,
    _C.high_availability,
    _C.generation,
    _C.observed_generation,
    _C.phase,
    _C.deletion_requested_at,
    _C.kubernetes_version,
    _C.endpoint,
    _C.ca_certificate,
    _C.ha_replicas_ready,
    _C.ha_replicas_desired,
    _C.conditions,
    _C.failure_count,
    _C.resource_version,
    select(Tenant.name).where(Tenant.id == Cluster.tenant_id).scalar_subquery(),
)


def _make(row: Sequence[Any], lease: str) -> ClusterItem:
    (
        cluster_id,
        name,
        type_,
        version,
        cpu_millis,
        memory_bytes,
        storage_bytes,
        alerts,
        high_availability,
        generation,
        observed_generation,
        phase,
        deletion_requested_at,
        kubernetes_version,
        endpoint,
        ca_certificate,
        ha_replicas_ready,
        ha_replicas_desired,
        conditions,
        failure_count,
        resource_version,
        tenant,
    ) = row
    return ClusterItem(
        id=cluster_id,
        tenant=tenant,
        name=name,
        type=type_,
        version=version,
        cpu_millis=cpu_millis,
        memory_bytes=memory_bytes,
        storage_bytes=storage_bytes,
        alerts=canonical_alerts(alerts),
        high_availability=bool(high_availability),
        generation=generation,
        observed_generation=observed_generation,
        phase=ClusterPhase(phase),
        deleting=deletion_requested_at is not None,
        kubernetes_version=kubernetes_version,
        endpoint=endpoint,
        ca_certificate=ca_certificate,
        ha_replicas_ready=ha_replicas_ready,
        ha_replicas_desired=ha_replicas_desired,
        conditions=tuple(conditions),
        failure_count=failure_count,
        resource_version=resource_version,
        lease=lease,
    )


# Clusters that look settled: the controller's last outcome for them was the periodic resync.
# They are the sweep's; the kind checks each against what it observes before it resyncs it
# in bulk.
SETTLED = and_(
    Cluster.phase.in_((ClusterPhase.RUNNING, ClusterPhase.DEGRADED)),
    Cluster.generation == Cluster.observed_generation,
    Cluster.deletion_requested_at.is_(None),
    Cluster.failure_count == 0,
)

CLUSTER_LEASES: Leases[ClusterItem] = Leases(
    Cluster,
    Loader(_COLUMNS, _make),
    live=(Cluster.removed_at.is_(None),),
    settled=SETTLED,
)
