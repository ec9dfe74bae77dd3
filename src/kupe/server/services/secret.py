"""Managed secret rules (API §7): definitions and their sync targets; the reconciler reads the
values from OpenBao and writes the copies. Only desired state is recorded here."""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.conditions import Condition, set_condition
from kupe.core.errors import (
    AlreadyExists,
    Conflict,
    ImmutableField,
    NotFound,
    NotImplementedYet,
    PreconditionFailed,
    ValidationFailed,
)
from kupe.core.etag import check_if_match
from kupe.core.pagination import cut_page, page_query
from kupe.schemas.secret import Secret, SecretCreate, SecretUpdate, SyncTarget
from kupe.server.db.engine import Database
from kupe.server.db.models import ManagedSecret
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.secret import SecretRepository
from kupe.server.openbao.paths import secret_path_problem
from kupe.server.services.auth import Principal

CAS_ATTEMPTS = 5
PENDING, DELETING = "Pending", "Deleting"


def secret_view(row: ManagedSecret) -> Secret:
    """The wire form of a managed secret row."""
    return Secret.model_validate(
        {
            "name": row.name,
            "secretPath": row.secret_path,
            "sync": row.sync,
            "resourceVersion": str(row.resource_version),
            "createdAt": row.created_at.replace(microsecond=0),
            "status": {
                "phase": row.phase,
                "conditions": row.conditions,
                "syncStatuses": row.sync_statuses,
            },
        }
    )


def target_key(target: dict[str, Any], secret: str) -> tuple[str, str, str]:
    """What identifies a copy: cluster, namespace and the Secret's effective name."""
    return (target["cluster"], target["namespace"], target.get("secretName") or secret)


class SecretService:
    def __init__(self, db: Database, clock: Clock, *, enabled: bool) -> None:
        self.db = db
        self.clock = clock
        # Managed secrets need OpenBao; without it the routes answer 501.
        self.enabled = enabled

    def require_enabled(self) -> None:
        if not self.enabled:
            raise NotImplementedYet(
                "Managed secrets need OpenBao on this installation (KUPE_OPENBAO_ADDR)"
            )

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[ManagedSecret], str | None]:
        self.require_enabled()
        after, fetch = page_query(continue_token, limit)
        rows = await SecretRepository(session, principal.tenant_id).list(after=after, limit=fetch)
        return cut_page(rows, limit, lambda row: row.name)

    async def get(self, session: AsyncSession, principal: Principal, name: str) -> ManagedSecret:
        self.require_enabled()
        row = await SecretRepository(session, principal.tenant_id).get(name)
        if row is None:
            raise NotFound(f"Secret {name!r} not found")
        return row

    async def create(
        self, session: AsyncSession, principal: Principal, body: SecretCreate
    ) -> ManagedSecret:
        """Record a managed secret; the reconciler syncs it."""
        self.require_enabled()
        principal.require_admin()
        problem = secret_path_problem(body.secret_path)
        if problem:
            raise ValidationFailed(f"secretPath: {problem}", field="secretPath")
        sync = await self._targets(session, principal, body.name, body.sync)
        repo = SecretRepository(session, principal.tenant_id)
        if await repo.get(body.name) is not None:
            raise AlreadyExists("Secret name already exists", field="name")
        now = self.clock.now()
        row = ManagedSecret(
            id=uuid.uuid4().hex,
            tenant_id=principal.tenant_id,
            name=body.name,
            secret_path=body.secret_path,
            sync=sync,
            generation=1,
            observed_generation=0,
            resource_version=await self.db.next_resource_version(session),
            created_at=now,
            phase=PENDING,
            conditions=_waiting(now),
            sync_statuses=_pending_statuses(body.name, sync),
            applied=[],
            next_reconcile_at=now,
            failure_count=0,
        )
        repo.add(row)
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadyExists("Secret name already exists", field="name") from None
        return row

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        name: str,
        patch: SecretUpdate,
        *,
        if_match: str | None,
    ) -> ManagedSecret:
        """Replace the targets (`[]` stops syncing; copies already made are removed)."""
        principal.require_admin()
        repo = SecretRepository(session, principal.tenant_id)
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                raise Conflict("Secret is being deleted", code="SECRET_DELETING")
            for given, current, wire in (
                (patch.name, row.name, "name"),
                (patch.secret_path, row.secret_path, "secretPath"),
            ):
                if given is not None and given != current:
                    raise ImmutableField(f"{wire} is immutable", field=wire)
            sync = await self._targets(session, principal, row.name, patch.sync)
            if sync == row.sync:
                return row
            now = self.clock.now()
            # Not Active until the reconciler has brought every new target in: clients wait
            # for exactly Active after an update.
            values = {
                "sync": sync,
                "phase": PENDING,
                "conditions": set_condition(
                    row.conditions, "Ready", False, PENDING, "Waiting for the reconciler", now
                ),
                "sync_statuses": _carried_statuses(row, sync),
                "generation": row.generation + 1,
                "resource_version": await self.db.next_resource_version(session),
                "next_reconcile_at": now,
            }
            if await repo.compare_and_set(row.id, row.resource_version, values):
                return await self.get(session, principal, name)
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Secret is changing too fast; retry the request")

    async def delete(
        self, session: AsyncSession, principal: Principal, name: str, *, if_match: str | None
    ) -> None:
        """Start removing the copies; the OpenBao value is untouched. Deleting again is a
        no-op."""
        principal.require_admin()
        repo = SecretRepository(session, principal.tenant_id)
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                return
            if await repo.compare_and_set(
                row.id, row.resource_version, await self._deletion(session, row)
            ):
                return
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Secret is changing too fast; retry the request")

    async def delete_all(self, session: AsyncSession, tenant_id: str) -> None:
        """Start deleting every managed secret of a tenant (its deletion cascades)."""
        repo = SecretRepository(session, tenant_id)
        for row in await repo.list():
            if row.deletion_requested_at is None:
                await repo.compare_and_set(
                    row.id, row.resource_version, await self._deletion(session, row)
                )

    async def _deletion(self, session: AsyncSession, row: ManagedSecret) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "deletion_requested_at": now,
            "phase": DELETING,
            "conditions": set_condition(
                row.conditions, "Ready", False, DELETING, "Removing the copies", now
            ),
            "resource_version": await self.db.next_resource_version(session),
            "next_reconcile_at": now,
        }

    async def _targets(
        self,
        session: AsyncSession,
        principal: Principal,
        secret: str,
        targets: builtins.list[SyncTarget] | None,
    ) -> builtins.list[dict[str, str]] | None:
        """The targets as stored; each must name a live cluster of this tenant, once."""
        if targets is None:
            return None
        clusters = ClusterRepository(session, principal.tenant_id)
        known = {row.name for row in await clusters.list()}
        seen: set[tuple[str, str, str]] = set()
        stored: list[dict[str, str]] = []
        for index, target in enumerate(targets):
            if target.cluster not in known:
                raise ValidationFailed(
                    f"there is no cluster {target.cluster!r} in this tenant",
                    field=f"sync.{index}.cluster",
                )
            entry = target.model_dump(by_alias=True, exclude_none=True)
            key = target_key(entry, secret)
            if key in seen:
                raise ValidationFailed(
                    f"sync names {key[0]}/{key[1]}/{key[2]} twice", field=f"sync.{index}"
                )
            seen.add(key)
            stored.append(entry)
        return stored


def _waiting(now: datetime) -> list[Condition]:
    return set_condition([], "Ready", False, PENDING, "Waiting for the reconciler", now)


def _carried_statuses(row: ManagedSecret, sync: list[dict[str, str]] | None) -> list[Any]:
    """The new targets' statuses: as last seen for those kept, Pending for the new ones."""
    seen = {(s["cluster"], s["namespace"], s["secretName"]): s for s in row.sync_statuses}
    pending = {
        (s["cluster"], s["namespace"], s["secretName"]): s
        for s in _pending_statuses(row.name, sync)
    }
    return [seen.get(key, status) for key, status in pending.items()]


def _pending_statuses(secret: str, sync: list[dict[str, str]] | None) -> list[dict[str, Any]]:
    return [
        {
            "cluster": cluster,
            "namespace": namespace,
            "secretName": name,
            "phase": PENDING,
            "message": "Waiting for the reconciler",
        }
        for cluster, namespace, name in (target_key(t, secret) for t in sync or [])
    ]
