"""One reader per process follows the outbox and fans its events out to every watcher.

However many watchers a process serves, it reads each new event once: the hub's reader is
woken by this process's commits, by PostgreSQL NOTIFY from any replica's (`kupe_events`, sent
by the outbox's trigger at commit) and otherwise polls (KUPE_EVENTS__POLL_SECONDS on SQLite,
every second on PostgreSQL). Each watcher has a bounded queue: one that falls behind by more
than KUPE_EVENTS__WATCHER_QUEUE events is ended (its client resumes from the last
resourceVersion it got), so a slow reader never makes the server buffer without bound.

`position` is the hub's promise: every event up to it has been read, in order. On PostgreSQL
each read first waits for the transactions that took resourceVersions to end (see
`Database.settled_versions`), so no event ever commits below the position.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import func, select

from kupe.server.db.engine import Database
from kupe.server.db.models import Event
from kupe.server.db.repositories.event import EventRepository
from kupe.server.event_settings import EventsSettings

log = structlog.get_logger("kupe.events")
EVENTS_CHANNEL = "kupe_events"
# Most events one read takes; a full read is followed by another at once.
READ_BATCH = 2000
# Recent events kept in memory, so a watcher resuming from a recent version reads nothing.
RECENT_EVENTS = 10_000
POSTGRES_POLL_SECONDS = 1.0


def ndjson_line(type_: str, body: str) -> bytes:
    """`{"type": ..., "object": ...}` and a newline, from the object's JSON text."""
    return f'{{"type":"{type_}","object":{body}}}\n'.encode()


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An outbox row as watchers get it."""

    resource_version: int
    kind: str
    tenant_id: str
    object_id: str
    name: str
    type: str
    object: str
    actor: str
    reason: str | None
    message: str | None
    time: datetime
    # The NDJSON watch line, made once for every watcher of the event.
    line: bytes

    @classmethod
    def of(cls, row: Event) -> StreamEvent:
        return cls(
            row.resource_version,
            row.kind,
            row.tenant_id,
            row.object_id,
            row.name,
            row.type,
            row.object,
            row.actor,
            row.reason,
            row.message,
            row.time,
            ndjson_line(row.type, row.object),
        )


class Subscription:
    """One watcher: which events it wants, and the bounded queue the hub fills."""

    def __init__(self, tenant_id: str, kind: str, name: str | None, limit: int, live_from: int):
        self.tenant_id = tenant_id
        self.kind = kind
        self.name = name
        self.limit = limit
        # The hub hands over every matching event after this version.
        self.live_from = live_from
        self.queue: deque[StreamEvent] = deque()
        self.ready = asyncio.Event()
        # Ended by the hub: it fell behind (`overflowed`) or the server is stopping.
        self.ended = False
        self.overflowed = False

    def wants(self, event: StreamEvent) -> bool:
        return event.kind == self.kind and (self.name is None or event.name == self.name)

    def offer(self, event: StreamEvent) -> bool:
        """Queue `event`; False (and ended) when the watcher is too far behind."""
        if len(self.queue) >= self.limit:
            self.overflowed = True
            self.end()
            return False
        self.queue.append(event)
        self.ready.set()
        return True

    def end(self) -> None:
        self.ended = True
        self.ready.set()

    async def next(self, wait: float) -> StreamEvent | None:
        """The next event; None when `wait` seconds passed first or the subscription ended and
        its queue is empty."""
        if not self.queue and not self.ended:
            self.ready.clear()
            # asyncio.timeout, not wait_for: no task per wait (one per event per watcher).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.ready.wait()
        return self.queue.popleft() if self.queue else None


class EventHub:
    def __init__(self, db: Database, settings: EventsSettings) -> None:
        self.db = db
        self.settings = settings
        self.position = 0
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._recent: deque[StreamEvent] = deque()
        # Every event after this version and up to `position` is in `_recent`.
        self._recent_floor = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False
        # Events may have committed past `position` while nobody watched.
        self._stale = False
        self._joining = asyncio.Lock()
        self.reads = 0  # outbox reads made (for tests and the bench)

    @property
    def watchers(self) -> int:
        return sum(len(subs) for subs in self._subscriptions.values())

    async def start(self) -> None:
        self.position = self._recent_floor = await self.settled_version()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._run(), name="kupe-event-hub"))
        if self.db.wakeups.available:
            self._tasks.append(
                loop.create_task(
                    self.db.wakeups.listen(self.poke, lambda _up: None, channel=EVENTS_CHANNEL),
                    name="kupe-event-listener",
                )
            )

    def poke(self) -> None:
        """New events may have committed: read the outbox now."""
        self._wake.set()

    async def settled_version(self) -> int:
        """The newest version in the outbox below which nothing can commit any more."""
        async with self.db.read() as session:
            await self.db.settled_versions(session)
            return int(await session.scalar(select(func.max(Event.resource_version))) or 0)

    async def subscribe(self, tenant_id: str, kind: str, name: str | None = None) -> Subscription:
        """A watcher of `kind` in the tenant (one object when `name` is given), getting every
        matching event after the current position."""
        async with self._joining:
            if self._stale and not self._subscriptions:
                # Nobody watched for a while: rather than read everything since, start afresh
                # from the settled position (no watcher relies on what came before it).
                settled = await self.settled_version()
                if not self._subscriptions:
                    self.position = self._recent_floor = max(self.position, settled)
                    self._recent.clear()
                    self._stale = False
            sub = Subscription(tenant_id, kind, name, self.settings.watcher_queue, self.position)
            if self.closed:
                sub.end()
            else:
                self._subscriptions.setdefault(tenant_id, set()).add(sub)
                self.poke()
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscriptions.get(sub.tenant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscriptions[sub.tenant_id]

    def recent(self, sub: Subscription, after: int, through: int) -> list[StreamEvent] | None:
        """The events `sub` wants in (after, through] from memory; None when some of them
        are no longer (or not yet) kept there."""
        if after < self._recent_floor or through > self.position:
            return None
        return [
            event
            for event in self._recent
            if after < event.resource_version <= through
            and event.tenant_id == sub.tenant_id
            and sub.wants(event)
        ]

    async def _run(self) -> None:
        poll = (
            self.settings.poll_seconds if not self.db.wakeups.available else POSTGRES_POLL_SECONDS
        )
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)
            self._wake.clear()
            if not self._subscriptions:
                self._stale = True  # nobody to tell (see subscribe)
                continue
            try:
                while await self._read() >= READ_BATCH:
                    pass
            except Exception as exc:  # the database may be away: watchers wait, then resume
                log.warning("events.read_failed", error=type(exc).__name__)
                await asyncio.sleep(poll)

    async def _read(self) -> int:
        async with self.db.read() as session:
            await self.db.settled_versions(session)
            rows = await EventRepository(session).after(self.position, READ_BATCH)
        self.reads += 1
        for row in rows:
            self._deliver(StreamEvent.of(row))
        return len(rows)

    def _deliver(self, event: StreamEvent) -> None:
        if len(self._recent) >= RECENT_EVENTS:
            self._recent_floor = self._recent.popleft().resource_version
        self._recent.append(event)
        self.position = max(self.position, event.resource_version)
        subs = self._subscriptions.get(event.tenant_id)
        if not subs:
            return
        version = event.resource_version
        behind = [
            sub
            for sub in subs
            if version > sub.live_from and sub.wants(event) and not sub.offer(event)
        ]
        for sub in behind:
            log.info("events.watcher_behind", tenant=event.tenant_id, kind=sub.kind)
            self.unsubscribe(sub)

    async def close(self) -> None:
        """End every watch stream (the server is stopping) and the reader."""
        self.closed = True
        for subs in list(self._subscriptions.values()):
            for sub in subs:
                sub.end()
        self._subscriptions.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def end_streams(self) -> None:
        """Synchronously end every stream (uvicorn's shutdown waits for open responses)."""
        self.closed = True
        for subs in list(self._subscriptions.values()):
            for sub in subs:
                sub.end()
        self._subscriptions.clear()
