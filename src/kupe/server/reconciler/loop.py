"""The reconciler loop: claim due clusters with a lease, reconcile them concurrently outside any
transaction, and write each outcome only while the lease is still held.

All work lives in the database (`next_reconcile_at`), never only in memory, so a crash loses
nothing: another process, or this one after a restart, picks the work up when the lease expires.
A heartbeat extends the leases of clusters being worked on; a claim whose lease could not be
extended in time is treated as lost, and its worker stops before touching the infrastructure
again and writes nothing. Replicas wake each other through the database (LISTEN/NOTIFY on
PostgreSQL); polling every `reconcile_poll_seconds` remains the fallback.

Settled clusters come due for their periodic resync all the time (a third of a thousand a
second at 100,000 clusters and the default KUPE_RESYNC_SECONDS), so they take a cheaper path: a
sweep reads many at once without claiming them, observes them with one provider call and, for
those whose observation changes nothing, moves only their next resync time, in one
compare-and-set statement (a row changed or taken meanwhile is left alone). A failed or
interrupted sweep wrote nothing, so the clusters are simply still due. The few that drifted
(or that the sweep cannot vouch for) are claimed and reconciled by the workers like any other
claim; the workers' own claims leave settled clusters to the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.reconcile import FinishResult, ReconcileRepository, WorkItem
from kupe.server.metrics import Metrics
from kupe.server.reconciler.cluster import ClusterController, LeaseLost, Outcome
from kupe.server.settings import Settings

log = structlog.get_logger("kupe.reconciler")
_STATUS_FIELDS = (
    "phase",
    "kubernetes_version",
    "endpoint",
    "ca_certificate",
    "observed_generation",
    "conditions",
    "removed_at",
)
# Errors that mean "the database is away", logged without a traceback.
_OUTAGE_ERRORS = (DBAPIError, OSError, TimeoutError)
Claim = tuple[str, str]
# How long the loop lingers after a wake-up before it claims (see Reconciler._idle).
COALESCE_SECONDS = 0.1
# The most outcomes written in one transaction.
WRITE_BATCH = 64
WRITE_LINGER_SECONDS = 0.01
# The most settled clusters one sweep reads and observes at once.
SWEEP_BATCH = 512
# Sweeps run this fraction of KUPE_RESYNC_SECONDS apart (or every poll, if that is longer):
# a settled cluster is resynced at most that late, and each sweep has more to do at once.
SWEEP_EVERY = 0.01


@dataclass
class _PendingWrite:
    """An outcome waiting to be written, and where its FinishResult goes."""

    item: WorkItem
    values: dict[str, Any]
    changed: bool
    next_at: datetime
    now: datetime
    result: asyncio.Future[FinishResult]


class Reconciler:
    def __init__(
        self,
        db: Database,
        controller: ClusterController,
        clock: Clock,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.db = db
        self.controller = controller
        self.clock = clock
        self.metrics = metrics
        self.settings = settings
        # Fits clusters.lease_owner (64) with the ":<n>" of each claim appended.
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._claims = itertools.count(1)
        self._wake = asyncio.Event()
        # Claims being worked on, and until when each is surely still ours.
        self._held: dict[Claim, WorkItem] = {}
        self._deadline: dict[Claim, datetime] = {}
        self._tasks: dict[Claim, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._main: asyncio.Task[None] | None = None
        self.last_loop_at = clock.now()
        self.listening = False
        self._next_depth_at = 0.0
        self._pending: list[_PendingWrite] = []
        self._writer: asyncio.Task[None] | None = None
        # Claims the sweep found drifted, waiting (leased and heartbeaten) for a free worker.
        self._backlog: deque[WorkItem] = deque()
        self._next_sweep_at = 0.0
        self._sweep_interval = max(
            settings.reconcile_poll_seconds, SWEEP_EVERY * settings.resync_seconds
        )

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="kupe-reconciler")
        self._background = [
            asyncio.create_task(self._beat(), name="kupe-reconciler-heartbeat"),
            asyncio.create_task(
                self.db.listen_for_work(self.wake, self._listener_state),
                name="kupe-reconciler-listener",
            ),
        ]

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    async def stop(self) -> None:
        tasks = [self._main, *self._background, *self._tasks.values(), self._writer]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._main = None
        self._background = []

    async def drain(self, max_rounds: int = 10_000) -> int:
        """Reconcile everything due now until nothing is; for tests that drive a fake clock."""
        done = 0
        for _ in range(max_rounds):
            swept = await self._sweep()
            drifted = self._from_backlog(len(self._backlog))
            claimed = await self._claim(self.settings.reconcile_workers)
            if not (swept or drifted or claimed):
                return done
            await asyncio.gather(*(self._handle(item) for item in drifted + claimed))
            done += swept + len(claimed)
        return done

    async def heartbeat(self) -> set[Claim]:
        """Extend the leases of every claim being worked on; forget (and so stop) the claims
        that are no longer ours. Returns the claims still held."""
        claims = list(self._held)
        if not claims:
            return set()
        lease_until = self._lease_until()
        async with self.db.write() as session:
            held = await ReconcileRepository(session).heartbeat(claims, lease_until=lease_until)
        for claim in claims:
            if claim in held:
                if claim in self._deadline:
                    self._deadline[claim] = lease_until
            elif self._held.pop(claim, None) is not None:
                self._deadline.pop(claim, None)
                log.warning("reconciler.lease_taken_over", cluster_id=claim[0])
        return held

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            self.last_loop_at = self.clock.now()
            swept = 0
            try:
                # Sweep now and then, or straight on while sweeps come back full.
                if not self._backlog and time.monotonic() >= self._next_sweep_at:
                    swept = await self._sweep()
                    if swept < SWEEP_BATCH:
                        self._next_sweep_at = time.monotonic() + self._sweep_interval
                free = self.settings.reconcile_workers - len(self._tasks)
                items = self._from_backlog(free)
                items += await self._claim(free - len(items))
                failures = 0
            except Exception as exc:  # the database may be away; keep the loop alive
                failures += 1
                log.warning("reconciler.claim_failed", error=type(exc).__name__)
                await self._idle(min(5.0, 0.25 * 2 ** min(failures, 5)))
                continue
            for item in items:
                task = asyncio.create_task(self._handle(item))
                self._tasks[item.key] = task
                task.add_done_callback(self._forget_task(item.key))
            if swept == SWEEP_BATCH or (items and len(items) == free):
                continue  # there may be more due right now
            if not items and not self._tasks and time.monotonic() >= self._next_depth_at:
                self._next_depth_at = time.monotonic() + 1.0
                await self._update_queue_depth()
            await self._idle(self.settings.reconcile_poll_seconds)

    def _forget_task(self, claim: Claim) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(claim, None)

        return forget

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake-up or `seconds` (when every worker is busy, for one to finish),
        then linger a moment: under load a burst of wake-ups and finished tasks becomes one
        claim of many clusters rather than many claims of one."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if len(self._tasks) >= self.settings.reconcile_workers:
            waiters.extend(self._tasks.values())
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        waiters[0].cancel()
        if done:
            await asyncio.sleep(COALESCE_SECONDS)
        self._wake.clear()

    async def _beat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat()
            except Exception as exc:
                # Deadlines are not extended, so workers stop before their leases can run out.
                log.warning("reconciler.heartbeat_failed", error=type(exc).__name__)

    def _listener_state(self, up: bool) -> None:
        self.listening = up
        self.metrics.listener_up.set(1 if up else 0)

    async def _update_queue_depth(self) -> None:
        try:
            async with self.db.read() as session:
                depth = await ReconcileRepository(session).due_count(self.clock.now())
            self.metrics.queue_depth.set(depth)
        except Exception as exc:
            log.warning("reconciler.queue_depth_failed", error=type(exc).__name__)

    def _lease_until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.settings.lease_seconds)

    async def _claim(self, limit: int) -> list[WorkItem]:
        """Lease up to `limit` due clusters for the workers, leaving settled ones to the sweep."""
        if limit <= 0:
            return []
        lease = f"{self.owner}:{next(self._claims)}"
        lease_until = self._lease_until()
        async with self.db.write() as session:
            items = await ReconcileRepository(session).claim(
                now=self.clock.now(),
                owner=lease,
                lease_until=lease_until,
                limit=limit,
                skip_settled=True,
            )
        return self._hold(items, lease_until)

    async def _claim_seen(self, seen: list[WorkItem]) -> list[WorkItem]:
        """Lease clusters the sweep read, unless someone changed or took them meanwhile."""
        lease = f"{self.owner}:{next(self._claims)}"
        lease_until = self._lease_until()
        async with self.db.write() as session:
            items = await ReconcileRepository(session).claim_seen(
                seen, now=self.clock.now(), owner=lease, lease_until=lease_until
            )
        return self._hold(items, lease_until)

    def _hold(self, items: list[WorkItem], lease_until: datetime) -> list[WorkItem]:
        for item in items:
            self._held[item.key] = item
            self._deadline[item.key] = lease_until
        return items

    def _from_backlog(self, limit: int) -> list[WorkItem]:
        """Up to `limit` drifted claims for workers, skipping those the heartbeat found lost."""
        taken: list[WorkItem] = []
        while self._backlog and len(taken) < limit:
            item = self._backlog.popleft()
            if item.key in self._held:
                taken.append(item)
        return taken

    async def _sweep(self) -> int:
        """Resync up to SWEEP_BATCH due settled clusters in bulk (see the module docstring);
        drifted ones are claimed for the workers (the backlog). Returns how many were read,
        0 if the sweep failed: a full batch means more may be due."""
        now = self.clock.now()
        async with self.db.read() as session:
            items = await ReconcileRepository(session).due_settled(now=now, limit=SWEEP_BATCH)
        if not items:
            return 0
        try:
            resync = await self.controller.resync(items)
            if resync.unchanged:
                await self._record_resync(resync.unchanged, resync.after)
            if resync.drifted:
                self._backlog.extend(await self._claim_seen(resync.drifted))
        except _OUTAGE_ERRORS as exc:
            log.warning("reconciler.sweep_failed", error=type(exc).__name__)
            return 0
        except Exception:
            log.exception("reconciler.sweep_failed")
            return 0
        return len(items)

    async def _record_resync(self, unchanged: list[WorkItem], after: float) -> None:
        now = self.clock.now()
        async with self.db.write() as session:
            resynced = await ReconcileRepository(session).resync(
                unchanged, now=now, next_at=now + timedelta(seconds=after)
            )
        # The others changed or were taken meanwhile: whoever did that looks at them.
        self.metrics.reconciles.labels("ok").inc(resynced)

    def _check_lease(self, claim: Claim) -> None:
        """Raise LeaseLost unless the claim is surely still ours for a while: it was not taken
        over, and its lease has a safety margin left (others' clocks may run a little ahead)."""
        deadline = self._deadline.get(claim)
        if claim not in self._held or deadline is None:
            raise LeaseLost(claim[0])
        margin = timedelta(seconds=self.settings.lease_seconds / 6)
        if self.clock.now() >= deadline - margin:
            raise LeaseLost(claim[0])

    async def _handle(self, item: WorkItem) -> None:
        try:
            outcome = await self.controller.reconcile(item, lambda: self._check_lease(item.key))
            # The write itself checks the lease in the database: an expired lease nobody took
            # over is still ours to write with.
            await self._finish(item, outcome)
        except LeaseLost:
            # Someone else may be working on it: leave everything to them.
            self.metrics.reconciles.labels("lost_lease").inc()
            log.warning("reconciler.lost_lease", cluster_id=item.id, stage="before_write")
        except _OUTAGE_ERRORS as exc:
            # The lease runs out and the work is retried; nothing is lost.
            log.warning("reconciler.handle_failed", cluster_id=item.id, error=type(exc).__name__)
        except Exception:
            log.exception("reconciler.handle_failed", cluster_id=item.id)
        finally:
            self._held.pop(item.key, None)
            self._deadline.pop(item.key, None)

    async def _write_pending(self) -> None:
        """Write the outcomes that are waiting, many per transaction (group commit): under load
        one write lock and one commit serve a whole batch; alone, an outcome is written at
        once. Each write still checks its own lease; a failed transaction fails its batch."""
        if len(self._tasks) > len(self._pending):
            # More workers are about to report: let their outcomes join this batch.
            await asyncio.sleep(WRITE_LINGER_SECONDS)
        while self._pending:
            batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
            try:
                async with self.db.write() as session:
                    repo = ReconcileRepository(session)
                    versions = iter(
                        await self.db.next_resource_versions(
                            session, sum(1 for write in batch if write.changed)
                        )
                    )
                    results = []
                    for write in batch:
                        if write.changed:
                            write.values["resource_version"] = next(versions)
                        results.append(
                            await repo.finish(
                                write.item,
                                owner=write.item.lease,
                                values=write.values,
                                next_at=write.next_at,
                                now=write.now,
                            )
                        )
            except Exception as exc:
                for write in batch:
                    if not write.result.done():
                        write.result.set_exception(exc)
                continue
            for write, result in zip(batch, results, strict=True):
                if not write.result.done():
                    write.result.set_result(result)

    async def _finish(self, item: WorkItem, outcome: Outcome) -> None:
        now = self.clock.now()
        values = dict(outcome.values)
        changed = (
            any(
                key in values and values[key] != getattr(item, key, None)
                for key in _STATUS_FIELDS
                if key != "removed_at"
            )
            or "removed_at" in values
        )
        write = _PendingWrite(
            item,
            values,
            changed,
            next_at=now + timedelta(seconds=outcome.requeue_after),
            now=now,
            result=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(write)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending(), name="kupe-outcomes")
        result = await write.result
        if result is FinishResult.LOST_LEASE:
            self.metrics.reconciles.labels("lost_lease").inc()
            log.warning("reconciler.lost_lease", cluster_id=item.id, stage="write")
            return
        self.metrics.reconciles.labels(outcome.result).inc()
        if result is FinishResult.REQUEUED:
            self.wake()
            return
        new_phase = values.get("phase", item.phase)
        if new_phase != item.phase:
            self.metrics.phase_transitions.labels(item.phase, new_phase).inc()
            log.info(
                "cluster.phase_changed",
                tenant=item.tenant,
                cluster=item.name,
                from_phase=item.phase,
                to_phase=new_phase,
            )
        if "removed_at" in values:
            log.info("cluster.removed", tenant=item.tenant, cluster=item.name)
        if outcome.error:
            log.warning(
                "cluster.provider_error",
                tenant=item.tenant,
                cluster=item.name,
                result=outcome.result,
                error=outcome.error,
            )
