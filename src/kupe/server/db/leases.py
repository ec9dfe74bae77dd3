"""Leases on reconciled rows, written once for every table that has them.

A leased row carries `LeaseMixin`'s columns. A lease is a token written to `lease_owner` by one
claim (a process may claim the same row again later under a new token, so a stale task of its
own can never pass for the new one) and a deadline in `lease_expires_at`; an expired lease may
be taken over by anyone. An outcome is written only while the lease is still held and the row
is still as the kind's guard requires (for clusters: the generation that was acted on).

Settled rows of kinds that resync in bulk are not claimed: the sweep reads many at once, and
for those whose observation changed nothing moves only their next look, in one compare-and-set
statement that writes nothing over a change made meanwhile (same resourceVersion).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from kupe.server.db.types import UTCDateTime


class LeaseMixin:
    """The reconciler's bookkeeping on a row: when to look next, who holds it, failures."""

    next_reconcile_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class LeasedModel(Protocol):
    """An ORM class with LeaseMixin's columns, a string `id` and a `resource_version`."""

    id: Any
    resource_version: Any
    next_reconcile_at: Any
    lease_owner: Any
    lease_expires_at: Any
    failure_count: Any
    __table__: Any


class WorkItem(Protocol):
    """A row as the reconciler read it: under a claim, or by the sweep without one."""

    @property
    def id(self) -> str: ...

    @property
    def lease(self) -> str:
        """The token it was claimed under; empty when the sweep read it without a claim."""
        ...

    @property
    def resource_version(self) -> int: ...

    @property
    def failure_count(self) -> int: ...


ItemT = TypeVar("ItemT", bound=WorkItem)
Claim = tuple[str, str]


class FinishResult(StrEnum):
    APPLIED = "applied"
    REQUEUED = "requeued"  # the row changed meanwhile: look again at once
    LOST_LEASE = "lost_lease"


@dataclass(frozen=True)
class Loader(Generic[ItemT]):
    """How a kind's work item is read: plain columns (Core rows: the sweep reads hundreds a
    second) and the function that builds the item from a row and the lease token."""

    columns: tuple[Any, ...]
    make: Callable[[Sequence[Any], str], ItemT]


class Leases(Generic[ItemT]):
    """Claim, sweep, heartbeat and finish statements for one leased table.

    `live` restricts every statement to rows the reconciler still works on (e.g. not
    removed); `settled`, for kinds that resync in bulk, says which rows the sweep owns."""

    def __init__(
        self,
        # An ORM class with LeasedModel's attributes (a Protocol cannot describe mapped
        # classes' class-level attributes to mypy).
        model: Any,
        loader: Loader[ItemT],
        *,
        live: Sequence[ColumnElement[bool]] = (),
        settled: ColumnElement[bool] | None = None,
    ) -> None:
        self.model: type[LeasedModel] = model
        self.loader = loader
        self.live = tuple(live)
        self.settled = settled

    def _unsettled(self, skip_settled: bool) -> tuple[ColumnElement[bool], ...]:
        return (not_(self.settled),) if skip_settled and self.settled is not None else ()

    def _due(self, now: datetime) -> tuple[ColumnElement[bool], ...]:
        m = self.model
        return (
            *self.live,
            m.next_reconcile_at <= now,
            or_(m.lease_expires_at.is_(None), m.lease_expires_at < now),
        )

    async def claim(
        self,
        session: AsyncSession,
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
        limit: int,
        skip_settled: bool = False,
    ) -> list[ItemT]:
        """Lease up to `limit` due rows under the token `owner` (unique to this claim); with
        `skip_settled`, none of those the sweep looks after. Other replicas skip rows locked
        here (PostgreSQL SKIP LOCKED); on SQLite the write transaction is itself exclusive."""
        m = self.model
        due = (
            select(m.id)
            .where(*self._due(now), *self._unsettled(skip_settled))
            .order_by(m.next_reconcile_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return await self._lease(session, m.id.in_(due), owner=owner, lease_until=lease_until)

    async def has_due(
        self, session: AsyncSession, now: datetime, *, skip_settled: bool = False
    ) -> bool:
        """Whether `claim` would find anything: a read, which locks and writes nothing."""
        m = self.model
        found = await session.scalar(
            select(m.id).where(*self._due(now), *self._unsettled(skip_settled)).limit(1)
        )
        return found is not None

    async def claim_seen(
        self,
        session: AsyncSession,
        items: Sequence[ItemT],
        *,
        now: datetime,
        owner: str,
        lease_until: datetime,
    ) -> list[ItemT]:
        """Lease those of `items` (read by the sweep) that are still due, unleased and as they
        were read (same resourceVersion); the others are someone else's by now."""
        if not items:
            return []
        m = self.model
        still = (
            select(m.id)
            .where(*self._due(now), *self._as_seen(session, items))
            .with_for_update(skip_locked=True)
        )
        return await self._lease(session, m.id.in_(still), owner=owner, lease_until=lease_until)

    async def due_settled(self, session: AsyncSession, *, now: datetime, limit: int) -> list[ItemT]:
        """Up to `limit` due, unleased settled rows, oldest due first; nothing is locked or
        written (the sweep's writes are compare-and-set)."""
        settled = self.settled if self.settled is not None else not_(true())
        result = await session.execute(
            select(*self.loader.columns)
            .where(*self._due(now), settled)
            .order_by(self.model.next_reconcile_at)
            .limit(limit)
        )
        return [self.loader.make(row, "") for row in result.all()]

    async def resync(
        self, session: AsyncSession, items: Sequence[ItemT], *, now: datetime, next_at: datetime
    ) -> int:
        """Move the next look at `items` (read by the sweep; observing them changed nothing) to
        `next_at`, and change nothing else: no resourceVersion, nothing a client can see. One
        statement, however many rows. A row is skipped if it changed since it was read, is no
        longer due or is leased: whoever changed or took it looks at it. Returns how many."""
        if not items:
            return 0
        result = await session.execute(
            update(self.model)
            .where(*self._due(now), *self._as_seen(session, items))
            # An expired lease is anyone's to take over; this clears it.
            .values(next_reconcile_at=next_at, lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def heartbeat(
        self, session: AsyncSession, claims: Sequence[Claim], *, lease_until: datetime
    ) -> set[Claim]:
        """Extend the given (id, lease token) claims; returns those still held."""
        if not claims:
            return set()
        m = self.model
        result = await session.execute(
            update(m)
            .where(
                m.id.in_({row_id for row_id, _ in claims}),
                m.lease_owner.in_({lease for _, lease in claims}),
            )
            .values(lease_expires_at=lease_until)
            .returning(m.id, m.lease_owner)
            .execution_options(synchronize_session=False)
        )
        extended = {(str(row[0]), str(row[1])) for row in result.all()}
        return extended & set(claims)

    async def finish(
        self,
        session: AsyncSession,
        item: ItemT,
        *,
        values: Mapping[str, Any],
        next_at: datetime,
        now: datetime,
        guard: Sequence[ColumnElement[bool]] = (),
    ) -> FinishResult:
        """Record an outcome and release the lease, only if the lease is still ours and the
        row still passes `guard`; otherwise release it for an immediate look (or do nothing
        when the lease was lost)."""
        m = self.model
        released = {"lease_owner": None, "lease_expires_at": None}
        result = await session.execute(
            update(m)
            .where(m.id == item.id, m.lease_owner == item.lease, *guard)
            .values(**values, **released, next_reconcile_at=next_at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return FinishResult.APPLIED
        result = await session.execute(
            update(m)
            .where(m.id == item.id, m.lease_owner == item.lease)
            .values(**released, next_reconcile_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return FinishResult.REQUEUED
        return FinishResult.LOST_LEASE

    async def due_count(self, session: AsyncSession, now: datetime) -> int:
        stmt = select(func.count()).select_from(self.model).where(*self._due(now))
        return int(await session.scalar(stmt) or 0)

    async def _lease(
        self, session: AsyncSession, which: Any, *, owner: str, lease_until: datetime
    ) -> list[ItemT]:
        # One statement: lock the rows, lease them, and read what the worker needs.
        leased = await session.execute(
            update(self.model)
            .where(which)
            .values(lease_owner=owner, lease_expires_at=lease_until)
            .returning(*self.loader.columns)
            .execution_options(synchronize_session=False)
        )
        return [self.loader.make(row, owner) for row in leased.all()]

    def _as_seen(
        self, session: AsyncSession, items: Sequence[ItemT]
    ) -> tuple[ColumnElement[bool], ...]:
        """Rows of `items` that nobody changed since they were read (same resourceVersion).
        The items travel as array (PostgreSQL) or JSON (SQLite) parameters, so the statement's
        text, and with it the prepared statement, is the same whatever their number."""
        m = self.model
        ids = [item.id for item in items]
        if session.get_bind().dialect.name == "postgresql":
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
                m.id == any_(bindparam("ids", ids, type_=ARRAY(String()))),
                tuple_(m.id, m.resource_version).in_(select(seen.c.id, seen.c.version)),
            )
        pairs = json.dumps([[item.id, item.resource_version] for item in items])
        each = func.json_each(bindparam("seen", pairs)).table_valued("value")
        return (
            tuple_(m.id, m.resource_version).in_(
                select(
                    func.json_extract(each.c.value, "$[0]"), func.json_extract(each.c.value, "$[1]")
                )
            ),
        )
