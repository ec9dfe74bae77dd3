"""A cluster's timeline (API §11): the outbox's events of it that carry a reason."""

from __future__ import annotations

from kupe.core.errors import NotFound
from kupe.schemas.event import Timeline, TimelineEntry
from kupe.server.db.engine import Database
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.event import EventRepository
from kupe.server.services.auth import Principal

# The most entries returned (the newest ones).
TIMELINE_LIMIT = 1000


class TimelineService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def timeline(self, principal: Principal, name: str) -> Timeline:
        """Cluster `name`'s timeline, oldest first: the live cluster's, else that of the one
        deleted last (while its events are kept); 404 when the caller's tenant has neither."""
        async with self.db.read() as session:
            cluster_id = await ClusterRepository(session, principal.tenant_id).newest_id(name)
            events = (
                []
                if cluster_id is None
                else await EventRepository(session).timeline(
                    principal.tenant_id, "cluster", cluster_id, TIMELINE_LIMIT
                )
            )
        if not events:
            raise NotFound(f"Cluster {name!r} not found")
        return Timeline(
            items=[
                TimelineEntry(
                    type=event.type,
                    reason=event.reason or "",
                    message=event.message,
                    time=event.time.replace(microsecond=0),
                    actor=event.actor,
                    resource_version=str(event.resource_version),
                )
                for event in events
            ]
        )
