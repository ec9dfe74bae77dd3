"""Watching clusters (API §11): the current state as ADDED events, or every event after a
resourceVersion, then changes as they commit; with heartbeats, and ending cleanly.

A watch without a resourceVersion lists after reading the settled position `S` (see
EventHub.settled_version): the list shows every change up to `S`, so the stream then skips
events up to `S`, and those of a listed cluster up to the version the list showed. A watch
from `N` replays (N, P] (memory, else the outbox) where P is the hub's position when it
subscribed, then gets what the hub reads after P: no gap, no duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from kupe.core.errors import Expired, NotFound, ValidationFailed
from kupe.server.db.engine import Database
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.event import EventRepository
from kupe.server.event_settings import EventsSettings
from kupe.server.services.auth import Principal
from kupe.server.services.cluster_views import RenderedViews
from kupe.server.services.event_hub import EventHub, StreamEvent, Subscription

CLUSTER = "cluster"
CATCH_UP_PAGE = 1000
BOOKMARK = "BOOKMARK"
EXPIRED = "ERROR"


@dataclass(frozen=True)
class WatchItem:
    """One thing to send: an event (`object` is its JSON text), a BOOKMARK (`object` None:
    resume from `resource_version`), or, last of all, EXPIRED (`type` ERROR)."""

    type: str
    resource_version: int
    object: str | None = None
    line: bytes | None = None  # the NDJSON line, when made already


def parse_version(value: str | None) -> int | None:
    """The `resourceVersion` query parameter: absent, or a non-negative integer."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise ValidationFailed(
            "resourceVersion must be a resourceVersion this server returned",
            field="resourceVersion",
        )
    return int(value)


class WatchService:
    def __init__(
        self, db: Database, hub: EventHub, views: RenderedViews, settings: EventsSettings
    ) -> None:
        self.db = db
        self.hub = hub
        self.views = views
        self.settings = settings

    async def open(
        self, principal: Principal, *, name: str | None, since: int | None
    ) -> AsyncIterator[WatchItem]:
        """Check the request (404, 410) and subscribe; the stream's items, lazily (a replay
        is read a page at a time, as the client takes it)."""
        tenant_id = principal.tenant_id
        if since is not None:
            async with self.db.read() as session:
                if since < await EventRepository(session).pruned_through():
                    raise Expired()
        sub = await self.hub.subscribe(tenant_id, CLUSTER, name)
        try:
            if since is None:
                first, skip = await self._listed(sub, name)
                start = first[-1].resource_version
                pages = _no_pages()
            else:
                skip, start = {"": since}, since
                pages = self._replay(sub, since)
                first = await anext(pages, [])
        except BaseException:
            self.hub.unsubscribe(sub)
            raise
        return self._stream(sub, first, pages, skip, start)

    async def _listed(
        self, sub: Subscription, name: str | None
    ) -> tuple[list[WatchItem], dict[str, int]]:
        settled = max(await self.hub.settled_version(), sub.live_from)
        async with self.db.read() as session:
            repo = ClusterRepository(session, sub.tenant_id)
            if name is None:
                rows = await repo.list()
            else:
                row = await repo.get(name)
                if row is None:
                    raise NotFound(f"Cluster {name!r} not found")
                rows = [row]
        items = [WatchItem("ADDED", row.resource_version, self.views.render(row)) for row in rows]
        items.append(WatchItem(BOOKMARK, settled))
        # Skip what the list already showed: everything up to `settled`, and each listed
        # cluster up to its listed version.
        skip = {row.id: row.resource_version for row in rows}
        skip[""] = settled
        return items, skip

    async def _replay(self, sub: Subscription, after: int) -> AsyncIterator[list[WatchItem]]:
        """Pages of the events in (after, live_from] the subscription wants, oldest first."""
        through = sub.live_from
        found = self.hub.recent(sub, after, through)
        if found is not None:
            yield [_item(event) for event in found]
            return
        cursor = after
        while cursor < through:
            async with self.db.read() as session:
                repo = EventRepository(session)
                rows = await repo.after(
                    cursor,
                    CATCH_UP_PAGE,
                    tenant_id=sub.tenant_id,
                    kind=sub.kind,
                    through=through,
                    name=sub.name,
                )
                # Pruned meanwhile: what was read may have a hole.
                if after < await repo.pruned_through():
                    raise Expired()
            if not rows:
                return
            cursor = rows[-1].resource_version
            yield [_item(StreamEvent.of(row)) for row in rows]

    async def _stream(
        self,
        sub: Subscription,
        first: list[WatchItem],
        pages: AsyncIterator[list[WatchItem]],
        skip: dict[str, int],
        start: int,
    ) -> AsyncIterator[WatchItem]:
        last = start
        try:
            for item in first:
                last = max(last, item.resource_version)
                yield item
            try:
                async for page in pages:
                    for item in page:
                        last = item.resource_version
                        yield item
            except Expired:
                # Too late for a 410: say so in the stream, as Kubernetes does, and end it.
                yield WatchItem(EXPIRED, last)
                return
            heartbeat = self.settings.heartbeat_seconds
            floor = skip.get("", 0)
            while True:
                event = await sub.next(heartbeat)
                if event is None:
                    if sub.ended:
                        return
                    # Idle: everything up to the hub's position that this watch wants has
                    # been sent, so the client may resume from there.
                    last = max(last, self.hub.position)
                    yield WatchItem(BOOKMARK, last)
                    continue
                if event.resource_version <= floor:
                    continue
                if event.resource_version <= skip.get(event.object_id, 0):
                    continue
                last = event.resource_version
                yield _item(event)
        finally:
            self.hub.unsubscribe(sub)


async def _no_pages() -> AsyncIterator[list[WatchItem]]:
    return
    yield []


def _item(event: StreamEvent) -> WatchItem:
    return WatchItem(event.type, event.resource_version, event.object, event.line)
