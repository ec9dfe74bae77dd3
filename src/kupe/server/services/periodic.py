"""Housekeeping every process that runs the reconciler does on its own: a job run every so
often in the background (a failure is logged and tried again next time), and deletion in
batches, one short transaction each (deleting twice is harmless, so replicas need no
coordination)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.engine import Database

log = structlog.get_logger("kupe.housekeeping")


async def delete_in_batches(
    db: Database, delete: Callable[[AsyncSession], Awaitable[int]], batch: int
) -> int:
    """Run `delete` (which removes at most `batch` rows) until it removes fewer; how many."""
    total = 0
    while True:
        async with db.write() as session:
            deleted = await delete(session)
        total += deleted
        if deleted < batch:
            return total


class Periodic:
    """Runs `job` every `interval` seconds from `start()` until `stop()`."""

    def __init__(self, name: str, job: Callable[[], Awaitable[object]], interval: float) -> None:
        self.name = name
        self.job = job
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            try:
                await self.job()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("housekeeping.failed", job=self.name, error=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
