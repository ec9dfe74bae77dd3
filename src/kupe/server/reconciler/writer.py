"""Outcomes written many per transaction (group commit).

Under load one write lock and one commit serve a whole batch of outcomes, of any kinds; alone,
an outcome is written at once. Each write still checks its own lease (the kind's `write`), and
a failed transaction fails its whole batch, whose workers then write nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult
from kupe.server.reconciler.kind import AnyKind, Outcome

# The most outcomes written in one transaction.
WRITE_BATCH = 64
WRITE_LINGER_SECONDS = 0.01


@dataclass
class _Pending:
    """An outcome waiting to be written, and where its FinishResult goes."""

    kind: AnyKind
    item: Any
    outcome: Outcome[Any]
    changed: bool
    next_at: datetime
    now: datetime
    result: asyncio.Future[FinishResult]


class OutcomeWriter:
    """Collects outcomes from workers and writes them in batches."""

    def __init__(self, db: Database, clock: Clock, busy: Callable[[], int]) -> None:
        self.db = db
        self.clock = clock
        # How many workers are running: more outcomes are about to arrive when they outnumber
        # those waiting.
        self._busy = busy
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, kind: AnyKind, item: Any, outcome: Outcome[Any]) -> FinishResult:
        """Write `outcome` (in some batch) and say how it went."""
        now = self.clock.now()
        pending = _Pending(
            kind,
            item,
            outcome,
            changed=kind.changes(item, outcome),
            next_at=now + timedelta(seconds=outcome.requeue_after),
            now=now,
            result=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(pending)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="kupe-outcomes")
        return await pending.result

    async def _drain(self) -> None:
        if self._busy() > len(self._pending):
            # More workers are about to report: let their outcomes join this batch.
            await asyncio.sleep(WRITE_LINGER_SECONDS)
        while self._pending:
            batch, self._pending = self._pending[:WRITE_BATCH], self._pending[WRITE_BATCH:]
            try:
                results = await self._write_batch(batch)
            except Exception as exc:
                for pending in batch:
                    if not pending.result.done():
                        pending.result.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                if not pending.result.done():
                    pending.result.set_result(result)

    async def _write_batch(self, batch: list[_Pending]) -> list[FinishResult]:
        async with self.db.write() as session:
            needed = sum(1 for pending in batch if pending.changed)
            versions = iter(await self.db.next_resource_versions(session, needed))
            results = []
            for pending in batch:
                results.append(
                    await pending.kind.write(
                        session,
                        pending.item,
                        pending.outcome,
                        resource_version=next(versions) if pending.changed else None,
                        next_at=pending.next_at,
                        now=pending.now,
                    )
                )
            return results

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
