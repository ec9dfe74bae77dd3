"""The outbox's reads (watch, timeline, webhooks) and its pruning.

The stable interface other capabilities build on:

- `EventRepository(session).after(resource_version, limit, tenant_id=None, kind=None)`: events
  with a greater resourceVersion, ascending (events of one resourceVersion come together);
- `EventRepository(session).record(...)`: write one event by hand, in the caller's transaction
  (changes of versioned rows are recorded by the outbox itself: see db/outbox.py);
- the row, `kupe.server.db.models.Event`: resource_version, kind (cluster, apikey, member,
  tenant, secret), object_id, tenant_id, name, type (ADDED, MODIFIED, DELETED), object (the
  public JSON text), actor (member email, `apikey:<id>`, `operator` or `system`), request_id,
  reason and message (a cluster's timeline), time.

On PostgreSQL a reader that follows the outbox live must bound its reads by a resourceVersion
read after `Database.settled_versions` (see `EventHub`), or it may pass a version that commits
later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.orm import aliased

from kupe.server.db.models import Event, EventHorizon
from kupe.server.db.repositories.base import Repository, rowcount

# The one row of `event_horizon`.
HORIZON_ID = "outbox"


class EventRepository(Repository):
    async def record(
        self,
        *,
        resource_version: int,
        kind: str,
        object_id: str,
        tenant_id: str,
        name: str,
        type: str,
        object: str,
        actor: str,
        time: datetime,
        request_id: str | None = None,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Write one event in the session's transaction."""
        await self.session.execute(
            insert(Event).values(
                resource_version=resource_version,
                kind=kind,
                object_id=object_id,
                tenant_id=tenant_id,
                name=name,
                type=type,
                object=object,
                actor=actor,
                request_id=request_id,
                reason=reason,
                message=message,
                time=time,
            )
        )

    async def after(
        self,
        resource_version: int,
        limit: int,
        *,
        tenant_id: str | None = None,
        kind: str | None = None,
        through: int | None = None,
        object_id: str | None = None,
        name: str | None = None,
    ) -> list[Event]:
        """Events after `resource_version` (and at most `through`), oldest first, at most
        `limit` (more when the last resourceVersion has several: a version is never split)."""
        stmt = select(Event).where(Event.resource_version > resource_version)
        if through is not None:
            stmt = stmt.where(Event.resource_version <= through)
        if tenant_id is not None:
            stmt = stmt.where(Event.tenant_id == tenant_id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        if object_id is not None:
            stmt = stmt.where(Event.object_id == object_id)
        if name is not None:
            stmt = stmt.where(Event.name == name)
        ordered = stmt.order_by(Event.resource_version, Event.kind, Event.object_id)
        rows = list((await self.session.scalars(ordered.limit(limit))).all())
        if len(rows) == limit:
            last = rows[-1].resource_version
            rest = stmt.where(Event.resource_version == last).order_by(Event.kind, Event.object_id)
            rows = [row for row in rows if row.resource_version != last]
            rows.extend((await self.session.scalars(rest)).all())
        return rows

    async def newest_version(self) -> int:
        """The greatest resourceVersion in the outbox (0 when empty)."""
        return int(await self.session.scalar(select(func.max(Event.resource_version))) or 0)

    async def timeline(self, tenant_id: str, kind: str, object_id: str, limit: int) -> list[Event]:
        """An object's events that carry a reason, oldest first (its newest `limit`)."""
        stmt = (
            select(Event)
            .where(
                Event.kind == kind,
                Event.object_id == object_id,
                Event.tenant_id == tenant_id,
                Event.reason.is_not(None),
            )
            .order_by(Event.resource_version.desc())
            .limit(limit)
        )
        return list(reversed((await self.session.scalars(stmt)).all()))

    async def pruned_through(self) -> int:
        """Watches from a resourceVersion below this one are EXPIRED."""
        stmt = select(EventHorizon.pruned_through).where(EventHorizon.id == HORIZON_ID)
        return int(await self.session.scalar(stmt) or 0)

    async def prune(self, before: datetime, batch: int) -> int:
        """Delete up to `batch` events older than `before`; how many. An object's newest event
        stays while the object lives (the outbox compares a change with it), which is also
        why the horizon moves to the greatest version pruned."""
        newer = aliased(Event)
        superseded = (
            select(newer.resource_version)
            .where(
                newer.kind == Event.kind,
                newer.object_id == Event.object_id,
                newer.resource_version > Event.resource_version,
            )
            .exists()
        )
        doomed = (
            select(Event.resource_version, Event.kind, Event.object_id)
            .where(Event.time < before, (Event.type == "DELETED") | superseded)
            .order_by(Event.resource_version)
            .limit(batch)
        )
        keys = list((await self.session.execute(doomed)).all())
        if not keys:
            return 0
        result = await self.session.execute(
            delete(Event)
            .where(tuple_(Event.resource_version, Event.kind, Event.object_id).in_(keys))
            .execution_options(synchronize_session=False)
        )
        highest = max(key[0] for key in keys)
        await self.session.execute(
            update(EventHorizon)
            .where(EventHorizon.id == HORIZON_ID, EventHorizon.pruned_through < highest)
            .values(pruned_through=highest)
        )
        return rowcount(result)
