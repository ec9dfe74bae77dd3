"""Queries of the reconciler: claim due clusters with a lease, heartbeat, and write outcomes
only while the lease is still held.

A lease is a token written to `clusters.lease_owner` by one claim (a process may claim the same
cluster again later under a new token, so a stale task of its own can never pass for the new
one) and a deadline in `lease_expires_at`; an expired lease may be taken over by anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.models import Cluster, Tenant


@dataclass(frozen=True)
class WorkItem:
    """A claimed cluster as the reconciler saw it when it took the lease."""

    id: str
    tenant: str
    name: str
    type: str
    version: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    generation: int
    observed_generation: int
    phase: str
    deleting: bool
    kubernetes_version: str | None
    endpoint: str | None
    ca_certificate: str | None
    conditions: list[dict[str, Any]]
    failure_count: int
    lease: str

    @property
    def key(self) -> tuple[str, str]:
        """Identifies this claim: the cluster and the lease token it was claimed under."""
        return (self.id, self.lease)


class FinishResult(StrEnum):
    APPLIED = "applied"
    REQUEUED = "requeued"  # the spec changed meanwhile: look again at once
    LOST_LEASE = "lost_lease"


def _live_and_due(now: datetime) -> Any:
    return (
        Cluster.removed_at.is_(None),
        Cluster.next_reconcile_at <= now,
        or_(Cluster.lease_expires_at.is_(None), Cluster.lease_expires_at < now),
    )


_CLAIMED = (
    "id",
    "name",
    "type",
    "version",
    "cpu_millis",
    "memory_bytes",
    "storage_bytes",
    "generation",
    "observed_generation",
    "phase",
    "deletion_requested_at",
    "kubernetes_version",
    "endpoint",
    "ca_certificate",
    "conditions",
    "failure_count",
)


class ReconcileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, *, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[WorkItem]:
        """Lease up to `limit` due clusters under the token `owner` (unique to this claim).
        Other replicas skip rows locked here (PostgreSQL SKIP LOCKED); on SQLite the write
        transaction (BEGIN IMMEDIATE) is itself exclusive."""
        due = (
            select(Cluster.id)
            .where(*_live_and_due(now))
            .order_by(Cluster.next_reconcile_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # One statement: lock the due rows, lease them, and read what the worker needs.
        leased = await self.session.execute(
            update(Cluster)
            .where(Cluster.id.in_(due))
            .values(lease_owner=owner, lease_expires_at=lease_until)
            .returning(
                *(getattr(Cluster, column) for column in _CLAIMED),
                select(Tenant.name)
                .where(Tenant.id == Cluster.tenant_id)
                .scalar_subquery()
                .label("tenant_name"),
            )
            .execution_options(synchronize_session=False)
        )
        return [
            WorkItem(
                id=row.id,
                tenant=row.tenant_name,
                name=row.name,
                type=row.type,
                version=row.version,
                cpu_millis=row.cpu_millis,
                memory_bytes=row.memory_bytes,
                storage_bytes=row.storage_bytes,
                generation=row.generation,
                observed_generation=row.observed_generation,
                phase=row.phase,
                deleting=row.deletion_requested_at is not None,
                kubernetes_version=row.kubernetes_version,
                endpoint=row.endpoint,
                ca_certificate=row.ca_certificate,
                conditions=list(row.conditions),
                failure_count=row.failure_count,
                lease=owner,
            )
            for row in leased.all()
        ]

    async def heartbeat(
        self, claims: Sequence[tuple[str, str]], *, lease_until: datetime
    ) -> set[tuple[str, str]]:
        """Extend the given (cluster id, lease token) claims; returns those still held."""
        if not claims:
            return set()
        result = await self.session.execute(
            update(Cluster)
            .where(
                Cluster.id.in_({cluster_id for cluster_id, _ in claims}),
                Cluster.lease_owner.in_({lease for _, lease in claims}),
            )
            .values(lease_expires_at=lease_until)
            .returning(Cluster.id, Cluster.lease_owner)
            .execution_options(synchronize_session=False)
        )
        extended = {(str(row[0]), str(row[1])) for row in result.all()}
        return extended & set(claims)

    async def finish(
        self,
        item: WorkItem,
        *,
        owner: str,
        values: dict[str, Any],
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        """Record an outcome and release the lease, only if the lease is still ours and the
        spec is the one we acted on; otherwise release for an immediate look (or do nothing
        when the lease was lost)."""
        released = {"lease_owner": None, "lease_expires_at": None}
        deleting_now = (
            Cluster.deletion_requested_at.is_not(None)
            if item.deleting
            else Cluster.deletion_requested_at.is_(None)
        )
        result = await self.session.execute(
            update(Cluster)
            .where(
                Cluster.id == item.id,
                Cluster.lease_owner == owner,
                Cluster.generation == item.generation,
                deleting_now,
            )
            .values(**values, **released, next_reconcile_at=next_at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return FinishResult.APPLIED
        result = await self.session.execute(
            update(Cluster)
            .where(Cluster.id == item.id, Cluster.lease_owner == owner)
            .values(**released, next_reconcile_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return FinishResult.REQUEUED
        return FinishResult.LOST_LEASE

    async def due_count(self, now: datetime) -> int:
        stmt = select(func.count()).select_from(Cluster).where(*_live_and_due(now))
        return int(await self.session.scalar(stmt) or 0)
