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

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement, event, func, insert, select
from sqlalchemy.orm import ORMExecuteState, Session, aliased

from kupe.core.clock import Clock
from kupe.server.db.models import Event

VERSIONS_KEY = "kupe.outbox.versions"
NOTED_KEY = "kupe.outbox.noted"
OUTBOX_KEY = "kupe.outbox"
WROTE_KEY = "kupe.outbox.wrote"
TABLES_KEY = "kupe.outbox.tables"
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
    # The table whose writes can change this kind (only then is it asked what changed).
    table: str

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> list[tuple[Any, Previous | None]]:
        """The rows this transaction changed (those carrying one of `versions`, and those
        `noted` for this kind), each with its object's newest recorded event (see
        `with_previous`). Runs synchronously inside the commit."""
        ...

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
        # Called after a commit that wrote events (this process's watchers look at once).
        self.committed: list[Callable[[], None]] = []

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
        written: set[str] = session.info.pop(TABLES_KEY, set())
        for kind, source in self.sources.items():
            mine = noted.get(kind, ())
            if source.table not in written and not mine:
                continue
            for row, previous in source.changed(session, versions, mine):
                change = source.describe(session, row, previous)
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
            session.info[WROTE_KEY] = True
        return len(rows)


def with_previous(
    session: Session, model: Any, kind: str, where: ColumnElement[bool]
) -> list[tuple[Any, Previous | None]]:
    """The rows of `model` matching `where`, each with its newest event, in one statement (the
    outbox's cost is a statement or two per transaction, not one per question)."""
    newest = (
        select(Event.type, Event.object)
        .where(Event.kind == kind, Event.object_id == model.id)
        .order_by(Event.resource_version.desc())
        .limit(1)
    )
    type_ = newest.with_only_columns(Event.type).scalar_subquery()
    body = newest.with_only_columns(Event.object).scalar_subquery()
    stmt = select(model, type_, body).where(where).execution_options(populate_existing=True)
    return [
        (row[0], None if row[1] is None else Previous(row[1], row[2]))
        for row in session.execute(stmt)
    ]


def previous_events(session: Session, kind: str, ids: list[str]) -> dict[str, Previous]:
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
        session.info.pop(TABLES_KEY, None)
        return
    assert isinstance(outbox, Outbox)
    outbox.write(session)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    # Which tables the transaction wrote (Core-style INSERT/UPDATE/DELETE on mapped classes).
    if (state.is_insert or state.is_update or state.is_delete) and state.bind_mapper is not None:
        table = state.bind_mapper.local_table
        name = getattr(table, "name", None)
        if name is not None:
            state.session.info.setdefault(TABLES_KEY, set()).add(name)


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: object) -> None:
    # ... and which ones the unit of work flushed (objects added or changed through the ORM).
    tables = session.info.setdefault(TABLES_KEY, set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        table = getattr(type(obj), "__tablename__", None)
        if isinstance(table, str):
            tables.add(table)


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    outbox = session.info.get(OUTBOX_KEY)
    if session.info.pop(WROTE_KEY, False) and isinstance(outbox, Outbox):
        for callback in outbox.committed:
            callback()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(VERSIONS_KEY, None)
    session.info.pop(NOTED_KEY, None)
    session.info.pop(WROTE_KEY, None)
    session.info.pop(TABLES_KEY, None)
