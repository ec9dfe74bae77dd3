"""The event services of one process: the shared outbox reader, watches and timelines."""

from __future__ import annotations

from dataclasses import dataclass

from kupe.server.db.engine import Database
from kupe.server.event_settings import EventsSettings
from kupe.server.services.cluster_views import RenderedViews
from kupe.server.services.event_hub import EventHub
from kupe.server.services.timeline import TimelineService
from kupe.server.services.watch import WatchService


@dataclass(frozen=True)
class EventServices:
    hub: EventHub
    watch: WatchService
    timeline: TimelineService


def build_event_services(
    db: Database, settings: EventsSettings, views: RenderedViews
) -> EventServices:
    hub = EventHub(db, settings)
    if db.outbox is not None:
        # This process's own commits wake its watchers at once.
        db.outbox.committed.append(hub.poke)
    return EventServices(hub, WatchService(db, hub, views, settings), TimelineService(db))
