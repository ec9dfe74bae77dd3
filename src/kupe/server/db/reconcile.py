"""Queries of the reconciler: claim due clusters with a lease, heartbeat, and write outcomes
only while the lease is still held.

A lease is a token written to `clusters.lease_owner` by one claim (a process may claim the same
cluster again later under a new token, so a stale task of its own can never pass for the new
one) and a deadline in `lease_expires_at`; an expired lease may be taken over by anyone.

Settled clusters (the periodic resync, a third of a thousand a second at 100,000 clusters) are
not claimed: the sweep reads many at once, and for those whose observation changed nothing moves
only their next resync time, in one compare-and-set statement that writes nothing over a change
made meanwhile. Only the few that drifted are claimed, for the full reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.models import Cluster, Tenant


@dataclass(frozen=True)
class WorkItem:
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
    generation: int
    observed_generation: int
    phase: str
    deleting: bool
    kubernetes_version: str | None
    endpoint: str | None
    ca_certificate: str | None
    conditions: list[dict[str, Any]]
    failure_count: int
    resource_version: int
    # The token it was claimed under; empty when the sweep read it without a claim.
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


# Clusters that look settled: the controller's last outcome for them was the periodic resync.
# They are the sweep's; the controller checks each against what it observes before it resyncs
# it in bulk.
_SETTLED = and_(
    Cluster.phase.in_(("Running", "Degraded")),
    Cluster.generation == Cluster.observed_generation,
    Cluster.deletion_requested_at.is_(None),
    Cluster.failure_count == 0,
)


_COLUMNS = cast(Table, Cluster.__table__).c
# What a WorkItem is made of, in the order `_work_item` unpacks it: plain table columns (Core
# rows, no ORM on the way: the sweep reads hundreds a second). Not `x IS NOT NULL`: SQLite
# 3.40 gets that wrong in a RETURNING clause, so `deleting` is worked out in Python.
_WORK_ITEM_COLUMNS = (
    _COLUMNS.id,
    _COLUMNS.name,
    _COLUMNS.type,
    _COLUMNS.version,
    _COLUMNS.cpu_millis,
    _COLUMNS.memory_bytes,
    _COLUMNS.storage_bytes,
    _COLUMNS.generation,
    _COLUMNS.observed_generation,
    _COLUMNS.phase,
    _COLUMNS.deletion_requested_at,
    _COLUMNS.kubernetes_version,
    _COLUMNS.endpoint,
    _COLUMNS.ca_certificate,
    _COLUMNS.conditions,
    _COLUMNS.failure_count,
    _COLUMNS.resource_version,
    select(Tenant.name).where(Tenant.id == Cluster.tenant_id).scalar_subquery(),
)


def _work_item(row: Any, lease: str) -> WorkItem:
    (
        cluster_id,
        name,
        type_,
        version,
        cpu_millis,
        memory_bytes,
        storage_bytes,
        generation,
        observed_generation,
        phase,
        deletion_requested_at,
        kubernetes_version,
        endpoint,
        ca_certificate,
        conditions,
        failure_count,
        resource_version,
        tenant,
    ) = row
    return WorkItem(
        id=cluster_id,
        tenant=tenant,
        name=name,
        type=type_,
        version=version,
        cpu_millis=cpu_millis,
        memory_bytes=memory_bytes,
        storage_bytes=storage_bytes,
        generation=generation,
        observed_generation=observed_generation,
        phase=phase,
        deleting=deletion_requested_at is not None,
        kubernetes_version=kubernetes_version,
        endpoint=endpoint,
        ca_certificate=ca_certificate,
        conditions=list(conditions),
        failure_count=failure_count,
        resource_version=resource_version,
        lease=lease,
    )


class ReconcileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self,
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        skip_settled: bool = False,
    ) -> list[WorkItem]:
        """Lease up to `limit` due clusters under the token `owner` (unique to this claim);
        with `skip_settled`, none of those the sweep looks after. Other replicas skip rows
        locked here (PostgreSQL SKIP LOCKED); on SQLite the write transaction (BEGIN
        IMMEDIATE) is itself exclusive."""
        due = (
            select(Cluster.id)
            .where(*_live_and_due(now), *((not_(_SETTLED),) if skip_settled else ()))
            .order_by(Cluster.next_reconcile_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._lease(Cluster.id.in_(due), owner=owner, lease_until=lease_until)

    async def claim_seen(
        self, items: Sequence[WorkItem], *, now: datetime, owner: str, lease_until: datetime
    ) -> list[WorkItem]:
        """Lease those of `items` (read by the sweep) that are still due, unleased and as they
        were read (same resourceVersion); the others are someone else's by now."""
        if not items:
            return []
        still = (
            select(Cluster.id)
            .where(*_live_and_due(now), *self._as_seen(items))
            .with_for_update(skip_locked=True)
        )
        return await self._lease(Cluster.id.in_(still), owner=owner, lease_until=lease_until)

    async def due_settled(self, *, now: datetime, limit: int) -> list[WorkItem]:
        """Up to `limit` due, unleased settled clusters, oldest due first; nothing is locked
        or written (the sweep's writes are compare-and-set)."""
        result = await self.session.execute(
            select(*_WORK_ITEM_COLUMNS)
            .where(*_live_and_due(now), _SETTLED)
            .order_by(Cluster.next_reconcile_at)
            .limit(limit)
        )
        return [_work_item(row, "") for row in result.all()]

    async def resync(self, items: Sequence[WorkItem], *, now: datetime, next_at: datetime) -> int:
        """Move the next resync of `items` (read by the sweep; observing them changed nothing)
        to `next_at`, and change nothing else: no resourceVersion, status or anything a client
        can see. One statement, however many clusters. A cluster is skipped if it changed
        since it was read (a new resourceVersion), is no longer due (someone resynced it) or
        is leased: whoever changed or took it looks at it. Returns how many were resynced."""
        if not items:
            return 0
        result = await self.session.execute(
            update(Cluster)
            .where(*_live_and_due(now), *self._as_seen(items))
            .values(
                next_reconcile_at=next_at,
                # An expired lease is anyone's to take over; this clears it.
                lease_owner=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def _lease(self, which: Any, *, owner: str, lease_until: datetime) -> list[WorkItem]:
        # One statement: lock the rows, lease them, and read what the worker needs.
        leased = await self.session.execute(
            update(Cluster)
            .where(which)
            .values(lease_owner=owner, lease_expires_at=lease_until)
            .returning(*_WORK_ITEM_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        return [_work_item(row, owner) for row in leased.all()]

    def _as_seen(self, items: Sequence[WorkItem]) -> tuple[ColumnElement[bool], ...]:
        """Rows of `items` that nobody changed since they were read (same resourceVersion).
        The items travel as array (PostgreSQL) or JSON (SQLite) parameters, so the statement's
        text, and with it the prepared statement, is the same whatever their number."""
        ids = [item.id for item in items]
        if self._postgresql:
            versions = [item.resource_version for item in items]
            seen = (
                func.unnest(
                    bindparam("seen_ids", ids, type_=ARRAY(String())),
                    bindparam("seen_versions", versions, type_=ARRAY(BigInteger())),
                )
                .table_valued("id", "version")
                .render_derived()
            )
            return (
                # Lets the planner go by the primary key.
                Cluster.id == any_(bindparam("ids", ids, type_=ARRAY(String()))),
                tuple_(Cluster.id, Cluster.resource_version).in_(select(seen.c.id, seen.c.version)),
            )
        pairs = json.dumps([[item.id, item.resource_version] for item in items])
        each = func.json_each(bindparam("seen", pairs)).table_valued("value")
        return (
            tuple_(Cluster.id, Cluster.resource_version).in_(
                select(
                    func.json_extract(each.c.value, "$[0]"), func.json_extract(each.c.value, "$[1]")
                )
            ),
        )

    @property
    def _postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

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
