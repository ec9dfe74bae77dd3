"""What the outbox records for each kind: the rows a transaction changed, their public JSON
(exactly what the API shows, never a credential) and, for clusters, the timeline's reason.

Each source runs synchronously inside the commit (see db/outbox.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kupe.core.phases import ClusterPhase
from kupe.server.db.models import ApiKey, Cluster, ManagedSecret, Member, Tenant
from kupe.server.db.outbox import (
    Change,
    EventType,
    Outbox,
    Previous,
    previous_events,
    with_previous,
)
from kupe.server.services.cluster_views import cluster_view, render
from kupe.server.services.secret import secret_view
from kupe.server.services.views import api_key_view

ADDED, MODIFIED, DELETED = EventType.ADDED, EventType.MODIFIED, EventType.DELETED


Found = list[tuple[Any, Previous | None]]


def _by_version(session: Session, model: Any, kind: str, versions: Sequence[int]) -> Found:
    if not versions:
        return []
    return with_previous(session, model, kind, model.resource_version.in_(versions))


def _type(gone: bool, previous: Previous | None) -> str | None:
    """ADDED, MODIFIED or DELETED; None for a row already recorded as deleted."""
    if previous is not None and previous.type == DELETED:
        return None if gone else ADDED
    if gone:
        return DELETED
    return ADDED if previous is None else MODIFIED


class ClusterSource:
    kind = "cluster"
    table = "clusters"

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> Found:
        return _by_version(session, Cluster, self.kind, versions)

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        assert isinstance(row, Cluster)
        type_ = _type(row.removed_at is not None, previous)
        if type_ is None:
            return None
        reason, message = cluster_reason(row, type_, previous)
        return Change(
            row.id,
            row.tenant_id,
            row.name,
            type_,
            render(cluster_view(row)),
            row.resource_version,
            reason,
            message,
        )


def _ready_message(row: Cluster) -> str | None:
    for condition in row.conditions:
        if condition.get("type") == "Ready":
            message = condition.get("message")
            return str(message) if message else None
    return None


# Phase transitions the timeline names: (from, to) → reason; `None` as from means any phase.
_TRANSITIONS: dict[tuple[str | None, str], str] = {
    (ClusterPhase.PENDING, ClusterPhase.PROVISIONING): "ProvisioningStarted",
    (ClusterPhase.DEGRADED, ClusterPhase.RUNNING): "Recovered",
    (ClusterPhase.UPGRADING, ClusterPhase.RUNNING): "Upgraded",
    (None, ClusterPhase.RUNNING): "Running",
    (None, ClusterPhase.UPGRADING): "UpgradeStarted",
    (None, ClusterPhase.MIGRATING): "MigrationStarted",
    (None, ClusterPhase.DEGRADED): "Degraded",
    (None, ClusterPhase.FAILED): "Failed",
    (None, ClusterPhase.TERMINATING): "DeleteRequested",
}


def cluster_reason(
    row: Cluster, type_: str, previous: Previous | None
) -> tuple[str | None, str | None]:
    """The timeline entry a cluster's change makes (None: not a timeline entry, e.g. new
    metrics)."""
    if type_ == ADDED:
        return "Created", f"Cluster created (Kubernetes {row.version}, {row.type})"
    if type_ == DELETED:
        return "Deleted", "Cluster deleted; its infrastructure is gone"
    before: dict[str, Any] = json.loads(previous.object) if previous is not None else {}
    old_phase = before.get("status", {}).get("phase")
    if old_phase != row.phase:
        reason = _TRANSITIONS.get((old_phase, row.phase)) or _TRANSITIONS.get((None, row.phase))
        if reason is not None:
            return reason, _ready_message(row)
    if row.generation > int(before.get("generation", row.generation)):
        return "Updated", f"Spec changed (generation {row.generation})"
    return None, None


class SecretSource:
    kind = "secret"
    table = "managed_secrets"

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> Found:
        return _by_version(session, ManagedSecret, self.kind, versions)

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        assert isinstance(row, ManagedSecret)
        type_ = _type(row.removed_at is not None, previous)
        if type_ is None:
            return None
        body = secret_view(row).model_dump_json(by_alias=True, exclude_none=True)
        return Change(row.id, row.tenant_id, row.name, type_, body, row.resource_version)


class ApiKeySource:
    kind = "apikey"
    table = "api_keys"

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> Found:
        return _by_version(session, ApiKey, self.kind, versions)

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        assert isinstance(row, ApiKey)
        type_ = _type(row.revoked_at is not None, previous)
        if type_ is None:
            return None
        # The metadata view: never the raw key (only its creation answer has it) nor its hash.
        body = api_key_view(row).model_dump_json(by_alias=True, exclude_none=True)
        return Change(row.id, row.tenant_id, row.id, type_, body, row.resource_version)


class TenantSource:
    kind = "tenant"
    table = "tenants"

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> Found:
        return _by_version(session, Tenant, self.kind, versions)

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        assert isinstance(row, Tenant)
        type_ = _type(row.removed_at is not None, previous)
        if type_ is None:
            return None
        body = {
            "name": row.name,
            "displayName": row.display_name,
            "contactEmail": row.contact_email,
            "plan": row.plan,
            "resourceVersion": str(row.resource_version),
            "createdAt": row.created_at.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "status": {"phase": row.phase},
        }
        return Change(row.id, row.id, row.name, type_, json.dumps(body), row.resource_version)


@dataclass(frozen=True)
class _MemberChange:
    tenant_id: str
    email: str
    role: str | None  # None: removed
    resource_version: int


def _member_id(row: _MemberChange) -> str:
    return f"{row.tenant_id}/{row.email}"


class MemberSource:
    """Members carry their tenant's new resourceVersion (the one the member's change gave it)."""

    kind = "member"
    table = "members"

    def changed(
        self, session: Session, versions: Sequence[int], noted: Sequence[tuple[str, ...]]
    ) -> Found:
        out: list[_MemberChange] = []
        for tenant_id, email in dict.fromkeys((key[0], key[1]) for key in noted):
            version = session.scalar(select(Tenant.resource_version).where(Tenant.id == tenant_id))
            if version is None or int(version) not in versions:
                continue  # the tenant did not move: nothing a client could see changed
            role = session.scalar(
                select(Member.role).where(Member.tenant_id == tenant_id, Member.email == email)
            )
            out.append(_MemberChange(tenant_id, email, role, int(version)))
        if not out:
            return []
        previous = previous_events(session, self.kind, [_member_id(row) for row in out])
        return [(row, previous.get(_member_id(row))) for row in out]

    def describe(self, session: Session, row: Any, previous: Previous | None) -> Change | None:
        assert isinstance(row, _MemberChange)
        type_ = _type(row.role is None, previous)
        if type_ is None:
            return None
        body: dict[str, str] = {"email": row.email}
        if row.role is not None:
            body["role"] = row.role
        return Change(
            _member_id(row),
            row.tenant_id,
            row.email,
            type_,
            json.dumps(body),
            row.resource_version,
        )


def outbox_with_sources(outbox: Outbox) -> Outbox:
    """Register every kind the outbox records."""
    for source in (ClusterSource(), SecretSource(), ApiKeySource(), TenantSource(), MemberSource()):
        outbox.register(source)
    return outbox
