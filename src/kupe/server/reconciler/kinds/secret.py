"""The managed-secret kind: read the value from the tenant's OpenBao mount and keep a copy of it
in every target cluster, through the provider's SecretSync capability.

Level-triggered like the cluster kind: each pass reads the value, looks at each target's copy
and writes only those that are missing, not Kupe's, or older than the value's KV version;
copies no longer targeted are removed. The value passes through memory only: never into
Kupe's database, its logs or its errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.phases import CONNECTABLE_PHASES
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult
from kupe.server.db.models import ManagedSecret
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.openbao import OpenBaoClient, OpenBaoError, SecretEntry
from kupe.server.providers.base import Provider, SecretSync
from kupe.server.reconciler.kind import LeaseCheck, Outcome, Result, always_held
from kupe.server.reconciler.kinds.secret_item import SECRET_LEASES, SecretItem
from kupe.server.reconciler.kinds.secret_rules import SecretStatusUpdate, Sync, summarise
from kupe.server.reconciler.policy import RetryPolicy

log = structlog.get_logger("kupe.reconciler")
SecretOutcome = Outcome[SecretStatusUpdate]


class SecretKind:
    """Managed secrets, synced from OpenBao into clusters."""

    name = "secret"
    leases = SECRET_LEASES

    def __init__(
        self,
        db: Database,
        vault: OpenBaoClient | None,
        provider: Provider,
        clock: Clock,
        policy: RetryPolicy,
        resync_seconds: float,
    ) -> None:
        self.db = db
        self.vault = vault
        self.sync = Sync(provider if isinstance(provider, SecretSync) else None)
        self.clock = clock
        self.policy = policy
        self.resync_seconds = resync_seconds

    async def reconcile(
        self, item: SecretItem, check_lease: LeaseCheck = always_held
    ) -> SecretOutcome:
        now = self.clock.now()
        clusters = await self._clusters(item)
        if item.deleting:
            remaining = await self.sync.remove(item.applied, clusters, keep=(), check=check_lease)
            update = summarise(item, [], remaining, now, removed=not remaining)
            return Outcome(update, self.policy.poll_seconds)
        if self.vault is None:
            return self._broken(item, "managed secrets need OpenBao (KUPE_OPENBAO_ADDR)", now)
        try:
            entry: SecretEntry = await self.vault.read(item.tenant, item.secret_path)
        except OpenBaoError as exc:
            if exc.transient:
                failures = item.failure_count + 1
                # OpenBao is away: the definition keeps its last known status.
                update = SecretStatusUpdate.unchanged(item, failures)
                return Outcome(
                    update, self.policy.backoff(failures), result=Result.RETRY, error=str(exc)
                )
            return self._broken(item, str(exc), now)
        statuses, applied = await self.sync.converge(item, entry, clusters, now, check_lease)
        update = summarise(item, statuses, applied, now)
        settled = update.phase != "Pending"
        delay = self.resync_seconds if settled else self.policy.poll_seconds
        return Outcome(update, self.policy.jitter(delay))

    def changes(self, item: SecretItem, outcome: SecretOutcome) -> bool:
        return outcome.status.changes(item)

    async def write(
        self,
        session: AsyncSession,
        item: SecretItem,
        outcome: SecretOutcome,
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        values = outcome.status.columns(now)
        if resource_version is not None:
            values["resource_version"] = resource_version
        deleting_now = (
            ManagedSecret.deletion_requested_at.is_not(None)
            if item.deleting
            else ManagedSecret.deletion_requested_at.is_(None)
        )
        return await self.leases.finish(
            session,
            item,
            values=values,
            next_at=next_at,
            now=now,
            guard=(ManagedSecret.generation == item.generation, deleting_now),
        )

    def report(self, item: SecretItem, outcome: SecretOutcome, result: FinishResult) -> None:
        if result is not FinishResult.APPLIED:
            return
        status = outcome.status
        if status.phase is not None and status.phase != item.phase:
            log.info(
                "secret.phase_changed",
                tenant=item.tenant,
                secret=item.name,
                from_phase=item.phase,
                to_phase=status.phase,
            )
        if status.removed:
            log.info("secret.removed", tenant=item.tenant, secret=item.name)
        if outcome.error:
            log.warning(
                "secret.sync_error", tenant=item.tenant, secret=item.name, error=outcome.error
            )

    async def _clusters(self, item: SecretItem) -> dict[str, tuple[str, bool]]:
        """The tenant's live clusters by name: (id, whether it serves connections)."""
        async with self.db.read() as session:
            rows = await ClusterRepository(session, item.tenant_id).list()
        return {
            row.name: (
                row.id,
                row.phase in CONNECTABLE_PHASES and row.deletion_requested_at is None,
            )
            for row in rows
        }

    def _broken(self, item: SecretItem, reason: str, now: datetime) -> SecretOutcome:
        """The value cannot be had (no such entry, access denied): every target is in Error
        until the next look."""
        statuses: list[dict[str, Any]] = [
            {
                "cluster": t.cluster,
                "namespace": t.namespace,
                "secretName": t.secret_name,
                "phase": "Error",
                "message": reason,
            }
            for t in item.targets
        ]
        update = summarise(item, statuses, list(item.applied), now, reason=reason)
        return Outcome(
            update, self.policy.jitter(self.resync_seconds), result=Result.FAILED, error=reason
        )
