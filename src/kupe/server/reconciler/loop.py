"""The reconciler loop: claim due items of every kind with a lease, reconcile them concurrently
outside any transaction, and write each outcome only while the lease is still held.

All work lives in the database (`next_reconcile_at`), never only in memory, so a crash loses
nothing: another process, or this one after a restart, picks the work up when the lease
expires. The loop is made of collaborators that know nothing of any kind: `Claims` (the leases
held, and their heartbeat), the `Sweeper` (bulk resync of settled items) and the
`OutcomeWriter` (group commit). Replicas wake each other through the database (LISTEN/NOTIFY
on PostgreSQL); polling every `poll_seconds` remains the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult
from kupe.server.metrics import Metrics
from kupe.server.reconciler.claims import ClaimKey, Claims, claim_key
from kupe.server.reconciler.kind import AnyKind, LeaseLost, Result
from kupe.server.reconciler.sweeper import OUTAGE_ERRORS, Sweeper
from kupe.server.reconciler.writer import OutcomeWriter
from kupe.server.settings import ReconcilerSettings

log = structlog.get_logger("kupe.reconciler")
# How long the loop lingers after a wake-up before it claims (see Reconciler._idle).
COALESCE_SECONDS = 0.1
# Sweeps run this fraction of the resync interval apart (or every poll, if that is longer):
# a settled item is resynced at most that late, and each sweep has more to do at once.
SWEEP_EVERY = 0.01
Work = tuple[AnyKind, Any]


class Reconciler:
    """Runs every kind's reconciliation in one process, on shared workers."""

    def __init__(
        self,
        db: Database,
        kinds: Sequence[AnyKind],
        clock: Clock,
        metrics: Metrics,
        settings: ReconcilerSettings,
    ) -> None:
        self.db = db
        self.kinds = list(kinds)
        self.clock = clock
        self.metrics = metrics
        self.settings = settings
        self.claims = Claims(db, clock, settings.lease_seconds)
        self.sweeper = Sweeper(db, clock, self.claims, metrics)
        self.writer = OutcomeWriter(db, clock, busy=lambda: len(self._tasks))
        self.last_loop_at = clock.now()
        self.listening = False
        self._wake = asyncio.Event()
        self._tasks: dict[ClaimKey, asyncio.Task[None]] = {}
        self._background: list[asyncio.Task[None]] = []
        self._main: asyncio.Task[None] | None = None
        self._next_depth_at = 0.0
        self._next_sweep_at = 0.0
        self._sweep_interval = max(settings.poll_seconds, SWEEP_EVERY * settings.resync_seconds)
        self._first_kind = 0

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="kupe-reconciler")
        self._background = [
            asyncio.create_task(self._beat(), name="kupe-reconciler-heartbeat"),
            asyncio.create_task(
                self.db.wakeups.listen(self.wake, self._listener_state),
                name="kupe-reconciler-listener",
            ),
        ]

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    async def stop(self) -> None:
        tasks = [self._main, *self._background, *self._tasks.values()]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.writer.stop()
        self._main = None
        self._background = []

    async def drain(self, max_rounds: int = 10_000) -> int:
        """Reconcile everything due now until nothing is; for tests that drive a fake clock."""
        done = 0
        for _ in range(max_rounds):
            swept, _full = await self.sweeper.sweep(self.kinds)
            drifted = self.sweeper.take(len(self.sweeper.backlog))
            work = await self._claim(drifted, len(drifted) + self.settings.workers)
            if not (swept or work):
                return done
            await asyncio.gather(*(self._handle(kind, item) for kind, item in work))
            done += swept + len(work) - len(drifted)
        return done

    async def heartbeat(self) -> set[ClaimKey]:
        """Extend the leases of every claim being worked on (see Claims.heartbeat)."""
        return await self.claims.heartbeat()

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            self.last_loop_at = self.clock.now()
            full = False
            try:
                # Sweep now and then, or straight on while sweeps come back full.
                if not self.sweeper.backlog and time.monotonic() >= self._next_sweep_at:
                    _swept, full = await self.sweeper.sweep(self.kinds)
                    if not full:
                        self._next_sweep_at = time.monotonic() + self._sweep_interval
                free = self.settings.workers - len(self._tasks)
                work = await self._claim(self.sweeper.take(free), free)
                failures = 0
            except Exception as exc:  # the database may be away; keep the loop alive
                failures += 1
                log.warning("reconciler.claim_failed", error=type(exc).__name__)
                await self._idle(min(5.0, 0.25 * 2 ** min(failures, 5)))
                continue
            for kind, item in work:
                key = claim_key(kind, item)
                task = asyncio.create_task(self._handle(kind, item))
                self._tasks[key] = task
                task.add_done_callback(self._forget_task(key))
            if full or (work and len(work) == free):
                continue  # there may be more due right now
            if not work and not self._tasks and time.monotonic() >= self._next_depth_at:
                self._next_depth_at = time.monotonic() + 1.0
                await self.measure_queue_depth()
            await self._idle(self.settings.poll_seconds)

    def _forget_task(self, key: ClaimKey) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)

        return forget

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake-up or `seconds` (when every worker is busy, for one to finish),
        then linger a moment: under load a burst of wake-ups and finished tasks becomes one
        claim of many items rather than many claims of one."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        if len(self._tasks) >= self.settings.workers:
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
                await self.claims.heartbeat()
            except Exception as exc:
                # Deadlines are not extended, so workers stop before their leases can run out.
                log.warning("reconciler.heartbeat_failed", error=type(exc).__name__)

    def _listener_state(self, up: bool) -> None:
        self.listening = up
        self.metrics.listener_up.set(1 if up else 0)

    async def measure_queue_depth(self) -> None:
        """Set the queue-depth gauge of every kind: items due now (the loop does this when
        idle)."""
        try:
            async with self.db.read() as session:
                for kind in self.kinds:
                    depth = await kind.leases.due_count(session, self.clock.now())
                    self.metrics.queue_depth.labels(kind.name).set(depth)
        except Exception as exc:
            log.warning("reconciler.queue_depth_failed", error=type(exc).__name__)

    async def _claim(self, held: list[Work], limit: int) -> list[Work]:
        """`held` (taken from the sweep's backlog) and due items leased until
        there are `limit`, kind after kind (starting with a different kind each time, so none
        starves), leaving settled ones to the sweep.

        Only kinds a read finds due work for are claimed from: an idle poll takes no write
        lock (on SQLite, the one writer's) and costs one read.

        Whatever is held is returned: if a claim fails once something is held (the database
        went away between two kinds), the failure is logged and the held work handed out; lost
        here, the heartbeat would keep it leased and unworked for ever. Only a failure with
        nothing held is raised."""
        work = list(held)
        if limit <= len(work) or not self.kinds:
            return work
        order = self.kinds[self._first_kind :] + self.kinds[: self._first_kind]
        self._first_kind = (self._first_kind + 1) % len(self.kinds)
        step = "due"
        try:
            for kind in await self._with_due_work(order):
                if len(work) >= limit:
                    break
                step = kind.name
                token, lease_until = self.claims.new_token(), self.claims.lease_until()
                async with self.db.write() as session:
                    items = await kind.leases.claim(
                        session,
                        now=self.clock.now(),
                        owner=token,
                        lease_until=lease_until,
                        limit=limit - len(work),
                        skip_settled=True,
                    )
                self.claims.hold(kind, items, lease_until)
                work.extend((kind, item) for item in items)
        except Exception as exc:
            if not work:
                raise
            log.warning(
                "reconciler.claim_failed", step=step, held=len(work), error=type(exc).__name__
            )
        return work

    async def _with_due_work(self, kinds: list[AnyKind]) -> list[AnyKind]:
        """Those of `kinds` that have anything to claim, found in one read."""
        async with self.db.read() as session:
            now = self.clock.now()
            return [k for k in kinds if await k.leases.has_due(session, now, skip_settled=True)]

    async def _handle(self, kind: AnyKind, item: Any) -> None:
        key = claim_key(kind, item)
        try:
            outcome = await kind.reconcile(item, lambda: self.claims.check(key))
            # The write itself checks the lease in the database: an expired lease nobody took
            # over yet is still ours, and one taken over fails the write.
            result = await self.writer.write(kind, item, outcome)
            if result is FinishResult.LOST_LEASE:
                self.metrics.reconciles.labels(kind.name, Result.LOST_LEASE).inc()
                log.warning("reconciler.lost_lease", kind=kind.name, id=item.id, stage="write")
            else:
                self.metrics.reconciles.labels(kind.name, outcome.result).inc()
                if result is FinishResult.REQUEUED:
                    self.wake()
            kind.report(item, outcome, result)
        except LeaseLost:
            self.metrics.reconciles.labels(kind.name, Result.LOST_LEASE).inc()
            log.warning("reconciler.lost_lease", kind=kind.name, id=item.id, stage="provider")
        except asyncio.CancelledError:
            raise
        except OUTAGE_ERRORS as exc:
            # The database went away mid-write: the lease expires and the work is picked up
            # again; nothing was recorded.
            log.warning(
                "reconciler.handle_failed", kind=kind.name, id=item.id, error=type(exc).__name__
            )
        except Exception:
            log.exception("reconciler.handle_failed", kind=kind.name, id=item.id)
        finally:
            self.claims.release(key)
