"""The outbox: every transaction that changes a tenant-visible object writes its events itself,
just before it commits.

Nothing has to remember to record a change. Every change takes a fresh resourceVersion from
`Database.next_resource_version(s)` (the contract ETags already rely on), which notes it on the
session; at commit the outbox asks each registered `EventSource` for the rows now carrying one
of those versions and inserts their events in the same transaction, so an accepted change and
its event commit or vanish together. Objects without a version of their own (members) are
noted by their repository (`note`). Sources live with the services that render objects; this
module knows none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session, aliased

from kupe.core.clock import Clock
from kupe.server.db.models import Event

VERSIONS_KEY = "kupe.outbox.versions"
NOTED_KEY = "kupe.outbox.noted"
OUTBOX_KEY = "kupe.outbox"
ACTOR_KEY = "kupe.actor"
SYSTEM_ACTOR = "system"


class EventType:
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Previous:
    """An object's newest recorded event (what a change is compared with)."""

    type: str
    object: str


@dataclass(frozen=True)
class Change:
    """One object's change as its source describes it."""

    object_id: str
    tenant_id: str
    name: str
    type: str
    object: str
    resource_version: int
    reason: str | None = None
    message: str | None = None


class EventSource(Protocol):
    """One kind of object the outbox records (cluster, apikey, member, tenant, secret)."""

    kind: str

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> list[Any]:
        """The rows this transaction changed: those carrying one of `versions`, and those
        `noted` for this kind. Runs synchronously inside the commit."""
        ...

    def object_id(self, row: Any) -> str: ...

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        """The event for `row`, given the object's previous event (None: never recorded, or
        only long ago); None when nothing a client sees changed."""
        ...


def note_versions(session: Session, versions: Iterable[int]) -> None:
    """Remember resourceVersions the transaction took (Database does this)."""
    session.info.setdefault(VERSIONS_KEY, []).extend(versions)


def note(session: Session, kind: str, key: tuple[str, ...]) -> None:
    """Remember that an object without a resourceVersion of its own changed (members)."""
    session.info.setdefault(NOTED_KEY, {}).setdefault(kind, []).append(key)


def set_actor(session: Session, actor: str) -> None:
    """Who the transaction's changes are attributed to (`system` when nobody is set)."""
    session.info[ACTOR_KEY] = actor


class Outbox:
    """The registered sources, and the writing of a transaction's events."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sources: dict[str, EventSource] = {}

    def register(self, source: EventSource) -> None:
        self.sources[source.kind] = source

    def attach(self, session: Session) -> None:
        """Make `session`'s commits write events (Database.write does this)."""
        session.info[OUTBOX_KEY] = self

    def write(self, session: Session) -> int:
        """Insert the events of what `session` changed; how many."""
        versions = sorted(set(session.info.pop(VERSIONS_KEY, ())))
        noted: dict[str, list[tuple[str, ...]]] = session.info.pop(NOTED_KEY, {})
        if not versions and not noted:
            return 0
        actor = str(session.info.get(ACTOR_KEY) or SYSTEM_ACTOR)
        # The request middleware binds it for the request being served.
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        now = self.clock.now()
        rows: list[dict[str, Any]] = []
        for kind, source in self.sources.items():
            found = source.changed(session, versions, noted.get(kind, ()))
            if not found:
                continue
            previous = _previous(session, kind, [source.object_id(row) for row in found])
            for row in found:
                change = source.describe(session, row, previous.get(source.object_id(row)))
                if change is None:
                    continue
                rows.append(
                    {
                        "resource_version": change.resource_version,
                        "kind": kind,
                        "object_id": change.object_id,
                        "tenant_id": change.tenant_id,
                        "name": change.name,
                        "type": change.type,
                        "object": change.object,
                        "actor": actor,
                        "request_id": request_id,
                        "reason": change.reason,
                        "message": change.message,
                        "time": now,
                    }
                )
        if rows:
            session.execute(insert(Event), rows)
        return len(rows)


def _previous(session: Session, kind: str, ids: list[str]) -> dict[str, Previous]:
    """The newest event of each of `ids` (one query)."""
    older = aliased(Event)
    newest = (
        select(func.max(older.resource_version))
        .where(older.kind == Event.kind, older.object_id == Event.object_id)
        .scalar_subquery()
    )
    stmt = select(Event.object_id, Event.type, Event.object).where(
        Event.kind == kind, Event.object_id.in_(ids), Event.resource_version == newest
    )
    return {row[0]: Previous(row[1], row[2]) for row in session.execute(stmt)}


@event.listens_for(Session, "before_commit")
def _write_events(session: Session) -> None:
    # Runs inside AsyncSession.commit's greenlet, so it may execute statements synchronously.
    outbox = session.info.get(OUTBOX_KEY)
    if outbox is None:
        session.info.pop(VERSIONS_KEY, None)
        session.info.pop(NOTED_KEY, None)
        return
    assert isinstance(outbox, Outbox)
    outbox.write(session)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(VERSIONS_KEY, None)
    session.info.pop(NOTED_KEY, None)
