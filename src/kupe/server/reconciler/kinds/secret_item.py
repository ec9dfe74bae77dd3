"""A managed secret as the reconciler reads it, and the statements that lease and load it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select

from kupe.core.conditions import Condition
from kupe.server.db.leases import Leases, Loader
from kupe.server.db.models import ManagedSecret, Tenant


@dataclass(frozen=True)
class Target:
    """One copy the definition asks for."""

    cluster: str
    namespace: str
    secret_name: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.cluster, self.namespace, self.secret_name)


@dataclass(frozen=True)
class Applied:
    """One copy Kupe wrote and has not removed."""

    cluster_id: str
    cluster: str
    namespace: str
    secret_name: str
    source_version: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.cluster, self.namespace, self.secret_name)

    def stored(self) -> dict[str, Any]:
        return {
            "clusterId": self.cluster_id,
            "cluster": self.cluster,
            "namespace": self.namespace,
            "secretName": self.secret_name,
            "sourceVersion": self.source_version,
        }


@dataclass(frozen=True)
class SecretItem:
    id: str
    tenant_id: str
    tenant: str
    name: str
    secret_path: str
    targets: tuple[Target, ...]
    applied: tuple[Applied, ...]
    generation: int
    observed_generation: int
    phase: str
    deleting: bool
    conditions: tuple[Condition, ...]
    sync_statuses: tuple[dict[str, Any], ...]
    failure_count: int
    resource_version: int
    lease: str


_S = cast(Table, ManagedSecret.__table__).c
_COLUMNS = (
    _S.id,
    _S.tenant_id,
    _S.name,
    _S.secret_path,
    _S.sync,
    _S.applied,
    _S.generation,
    _S.observed_generation,
    _S.phase,
    _S.deletion_requested_at,
    _S.conditions,
    _S.sync_statuses,
    _S.failure_count,
    _S.resource_version,
    select(Tenant.name).where(Tenant.id == ManagedSecret.tenant_id).scalar_subquery(),
)


def _make(row: Sequence[Any], lease: str) -> SecretItem:
    (
        secret_id,
        tenant_id,
        name,
        secret_path,
        sync,
        applied,
        generation,
        observed_generation,
        phase,
        deletion_requested_at,
        conditions,
        sync_statuses,
        failure_count,
        resource_version,
        tenant,
    ) = row
    targets = tuple(
        Target(t["cluster"], t["namespace"], t.get("secretName") or name) for t in sync or []
    )
    copies = tuple(
        Applied(a["clusterId"], a["cluster"], a["namespace"], a["secretName"], a["sourceVersion"])
        for a in applied
    )
    return SecretItem(
        id=secret_id,
        tenant_id=tenant_id,
        tenant=tenant,
        name=name,
        secret_path=secret_path,
        targets=targets,
        applied=copies,
        generation=generation,
        observed_generation=observed_generation,
        phase=phase,
        deleting=deletion_requested_at is not None,
        conditions=tuple(conditions),
        sync_statuses=tuple(sync_statuses),
        failure_count=failure_count,
        resource_version=resource_version,
        lease=lease,
    )


SECRET_LEASES: Leases[SecretItem] = Leases(
    ManagedSecret, Loader(_COLUMNS, _make), live=(ManagedSecret.removed_at.is_(None),)
)
