"""What a reconciled kind is to the shared machinery, as controller-runtime has one reconciler
per kind on one manager: the loop, the claims, the sweep and the outcome writer know nothing of
clusters; a kind says how its work items are leased and loaded (`leases`), what to do with one
(`reconcile`) and how its outcome is written (`write`).

One pass flows one way: loop -> kind.reconcile -> provider -> Outcome -> writer -> kind.write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.leases import FinishResult, Leases, WorkItem

ItemT = TypeVar("ItemT", bound=WorkItem)
StatusT = TypeVar("StatusT")
# Raises LeaseLost when the claim may have run out; a kind calls it before every change to
# the world outside the database.
LeaseCheck = Callable[[], None]


class LeaseLost(Exception):
    """The claim on an item ran out: someone else may own it now, so touch nothing."""


def always_held() -> None:
    """A LeaseCheck for callers that hold no lease (tests, one-off tools)."""
    return None


class Result(StrEnum):
    """How a reconciliation went, for metrics and logs."""

    OK = "ok"
    RETRY = "retry"
    # Failed for good: a permanent error, or
    FAILED = "failed"
    # transient errors that went on for too long.
    RETRIES_EXHAUSTED = "retries_exhausted"
    LOST_LEASE = "lost_lease"


@dataclass(frozen=True)
class Outcome(Generic[StatusT]):
    """What to record for one item (`status`, typed by its kind) and when to look again."""

    status: StatusT
    requeue_after: float
    result: Result = Result.OK
    error: str | None = field(default=None)


class Kind(Protocol[ItemT, StatusT]):
    """One reconciled kind of row."""

    name: str
    leases: Leases[ItemT]

    async def reconcile(self, item: ItemT, check_lease: LeaseCheck) -> Outcome[StatusT]:
        """Observe the item's world and converge it; idempotent, level-triggered."""
        ...

    def changes(self, item: ItemT, outcome: Outcome[StatusT]) -> bool:
        """Whether the outcome changes what clients see (it then takes a new resourceVersion)."""
        ...

    async def write(
        self,
        session: AsyncSession,
        item: ItemT,
        outcome: Outcome[StatusT],
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        """Write the outcome in `session`'s transaction, only while the lease is held."""
        ...

    def report(self, item: ItemT, outcome: Outcome[StatusT], result: FinishResult) -> None:
        """After commit: the kind's own logs and metrics for an outcome."""
        ...


@dataclass
class Resync(Generic[ItemT]):
    """A bulk look at settled items: which are as recorded, and which need `reconcile`."""

    # Only their next look, `after` seconds from now, is to be recorded. One draw of the
    # jitter for the batch: its items are swept together again anyway, and other batches
    # draw other times.
    after: float
    unchanged: list[ItemT] = field(default_factory=list)
    drifted: list[ItemT] = field(default_factory=list)


@runtime_checkable
class BulkResync(Protocol):
    """A kind whose settled items are resynced in bulk by the sweep (its `leases` says which
    are settled): one look at many, and only the drifted go through `reconcile`."""

    async def resync(self, items: Sequence[Any]) -> Resync[Any]: ...


AnyKind = Kind[Any, Any]
