"""The reconciler loop: claim due clusters with a lease, reconcile them concurrently outside any
transaction, and write each outcome only while the lease is still held.

All work lives in the database (`next_reconcile_at`), never only in memory, so a crash loses
nothing: another process, or this one after a restart, picks the work up when the lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.reconcile import FinishResult, ReconcileRepository, WorkItem
from kupe.server.metrics import Metrics
from kupe.server.reconciler.cluster import ClusterController, Outcome
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
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._held: dict[str, WorkItem] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.last_loop_at = clock.now()

    # -- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for due work now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._main = asyncio.create_task(self._run(), name="kupe-reconciler")
        self._heartbeat = asyncio.create_task(self._beat(), name="kupe-reconciler-heartbeat")

    @property
    def running(self) -> bool:
        return self._main is not None and not self._main.done()

    async def stop(self) -> None:
        for task in (self._main, self._heartbeat, *self._tasks):
            if task is not None:
                task.cancel()
        for task in (self._main, self._heartbeat, *self._tasks):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._main = self._heartbeat = None

    async def drain(self, max_rounds: int = 10_000) -> int:
        """Reconcile everything due now until nothing is; for tests that drive a fake clock."""
        done = 0
        for _ in range(max_rounds):
            items = await self._claim(self.settings.reconcile_workers)
            if not items:
                return done
            await asyncio.gather(*(self._handle(item) for item in items))
            done += len(items)
        return done

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            self.last_loop_at = self.clock.now()
            free = self.settings.reconcile_workers - len(self._tasks)
            try:
                items = await self._claim(free) if free > 0 else []
                failures = 0
            except Exception as exc:  # the database may be away; keep the loop alive
                failures += 1
                log.warning("reconciler.claim_failed", error=type(exc).__name__)
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            for item in items:
                task = asyncio.create_task(self._handle(item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if items and len(items) == free:
                continue  # there may be more due right now
            if not items and not self._tasks:
                await self._update_queue_depth()
            await self._idle()

    async def _idle(self) -> None:
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        waiters.extend(self._tasks)
        await asyncio.wait(
            waiters,
            timeout=self.settings.reconcile_poll_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        waiters[0].cancel()
        self._wake.clear()

    async def _beat(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if not self._held:
                continue
            try:
                async with self.db.write() as session:
                    await ReconcileRepository(session).heartbeat(
                        list(self._held), owner=self.owner, lease_until=self._lease_until()
                    )
            except Exception as exc:
                log.warning("reconciler.heartbeat_failed", error=type(exc).__name__)

    async def _update_queue_depth(self) -> None:
        try:
            async with self.db.read() as session:
                depth = await ReconcileRepository(session).due_count(self.clock.now())
            self.metrics.queue_depth.set(depth)
        except Exception as exc:
            log.warning("reconciler.queue_depth_failed", error=type(exc).__name__)

    def _lease_until(self) -> Any:
        return self.clock.now() + timedelta(seconds=self.settings.lease_seconds)

    async def _claim(self, limit: int) -> list[WorkItem]:
        if limit <= 0:
            return []
        async with self.db.write() as session:
            items = await ReconcileRepository(session).claim(
                now=self.clock.now(), owner=self.owner, lease_until=self._lease_until(), limit=limit
            )
        for item in items:
            self._held[item.id] = item
        return items

    async def _handle(self, item: WorkItem) -> None:
        try:
            outcome = await self.controller.reconcile(item)
            await self._finish(item, outcome)
        except Exception:
            # The lease runs out and the work is retried; nothing is lost.
            log.exception("reconciler.handle_failed", cluster_id=item.id)
        finally:
            self._held.pop(item.id, None)

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
        async with self.db.write() as session:
            if changed:
                values["resource_version"] = await self.db.next_resource_version(session)
            result = await ReconcileRepository(session).finish(
                item,
                owner=self.owner,
                values=values,
                next_at=now + timedelta(seconds=outcome.requeue_after),
                now=now,
            )
        if result is FinishResult.LOST_LEASE:
            self.metrics.reconciles.labels("lost_lease").inc()
            log.warning("reconciler.lost_lease", cluster_id=item.id)
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
