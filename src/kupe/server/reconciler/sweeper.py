"""The bulk resync of settled items, for kinds that can (`BulkResync`).

Settled items come due for their periodic resync all the time (a third of a thousand a second
at 100,000 clusters and the default KUPE_RESYNC_SECONDS), so they take a cheaper path than a
claim each: the sweep reads many at once without claiming them, the kind observes them with
one call and, for those whose observation changes nothing, only their next look is moved, in
one compare-and-set statement (a row changed or taken meanwhile is left alone). A failed or
interrupted sweep wrote nothing, so the items are simply still due. The few that drifted are
claimed and queued (the backlog, leased and heartbeaten) for the workers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.metrics import Metrics
from kupe.server.reconciler.claims import Claims, claim_key
from kupe.server.reconciler.kind import AnyKind, BulkResync, Result

log = structlog.get_logger("kupe.reconciler")
# The most settled items one sweep reads and observes at once, per kind.
SWEEP_BATCH = 512
# Errors that mean "the database is away", logged without a traceback.
OUTAGE_ERRORS = (DBAPIError, OSError, TimeoutError)


class Sweeper:
    """Sweeps settled items of every kind that resyncs in bulk; keeps the drifted ones."""

    def __init__(self, db: Database, clock: Clock, claims: Claims, metrics: Metrics) -> None:
        self.db = db
        self.clock = clock
        self.claims = claims
        self.metrics = metrics
        self.backlog: deque[tuple[AnyKind, Any]] = deque()

    async def sweep(self, kinds: Sequence[AnyKind]) -> tuple[int, bool]:
        """Sweep each kind once: how many items were read, and whether any batch came back
        full (more may be due right now)."""
        total, full = 0, False
        for kind in kinds:
            if isinstance(kind, BulkResync):
                read = await self._sweep(kind)
                total += read
                full = full or read == SWEEP_BATCH
        return total, full

    def take(self, limit: int) -> list[tuple[AnyKind, Any]]:
        """Up to `limit` drifted claims for workers, skipping those the heartbeat found lost."""
        taken: list[tuple[AnyKind, Any]] = []
        while self.backlog and len(taken) < limit:
            kind, item = self.backlog.popleft()
            if claim_key(kind, item) in self.claims:
                taken.append((kind, item))
        return taken

    async def _sweep(self, kind: AnyKind) -> int:
        """Returns how many were read, 0 if the sweep failed."""
        assert isinstance(kind, BulkResync)
        now = self.clock.now()
        async with self.db.read() as session:
            items = await kind.leases.due_settled(session, now=now, limit=SWEEP_BATCH)
        if not items:
            return 0
        try:
            resync = await kind.resync(items)
            if resync.unchanged:
                await self._record(kind, resync.unchanged, resync.after)
            if resync.drifted:
                self.backlog.extend(
                    (kind, item) for item in await self._claim(kind, resync.drifted)
                )
        except OUTAGE_ERRORS as exc:
            log.warning("reconciler.sweep_failed", kind=kind.name, error=type(exc).__name__)
            return 0
        except Exception:
            log.exception("reconciler.sweep_failed", kind=kind.name)
            return 0
        return len(items)

    async def _record(self, kind: AnyKind, unchanged: list[Any], after: float) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            resynced = await kind.leases.resync(
                session, unchanged, now=now, next_at=now + timedelta(seconds=after)
            )
        # The others changed or were taken meanwhile: whoever did that looks at them.
        self.metrics.reconciles.labels(kind.name, Result.OK).inc(resynced)

    async def _claim(self, kind: AnyKind, seen: list[Any]) -> list[Any]:
        """Lease items the sweep read, unless someone changed or took them meanwhile."""
        token, lease_until = self.claims.new_token(), self.claims.lease_until()
        async with self.db.write() as session:
            items = await kind.leases.claim_seen(
                session, seen, now=self.clock.now(), owner=token, lease_until=lease_until
            )
        self.claims.hold(kind, items, lease_until)
        return items
