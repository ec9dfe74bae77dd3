"""What the managed-secret kind does per target, and the status it records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kupe.core.clock import rfc3339
from kupe.core.conditions import Condition, set_condition
from kupe.server.openbao import SecretEntry
from kupe.server.providers.base import (
    PermanentProviderError,
    ProviderError,
    SecretCopy,
    SecretSync,
)
from kupe.server.reconciler.kind import LeaseCheck
from kupe.server.reconciler.kinds.secret_item import Applied, SecretItem, Target

SOURCE_VERSION = "kupe.io/source-version"
DEFINITION_ANNOTATION = "kupe.io/managed-secret"
# cluster name -> (cluster id, whether it serves connections)
Clusters = dict[str, tuple[str, bool]]


@dataclass(frozen=True)
class SecretStatusUpdate:
    """What one pass records; None fields stay as they are."""

    failure_count: int
    phase: str | None = None
    conditions: tuple[Condition, ...] | None = None
    sync_statuses: tuple[dict[str, Any], ...] | None = None
    applied: tuple[Applied, ...] | None = None
    observed_generation: int | None = None
    removed: bool = False

    @classmethod
    def unchanged(cls, item: SecretItem, failures: int) -> SecretStatusUpdate:
        return cls(failure_count=failures)

    def columns(self, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"failure_count": self.failure_count}
        for name in ("phase", "observed_generation"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        if self.conditions is not None:
            values["conditions"] = list(self.conditions)
        if self.sync_statuses is not None:
            values["sync_statuses"] = list(self.sync_statuses)
        if self.applied is not None:
            values["applied"] = [copy.stored() for copy in self.applied]
        if self.removed:
            values["removed_at"] = now
        return values

    def changes(self, item: SecretItem) -> bool:
        return (
            self.removed
            or (self.phase is not None and self.phase != item.phase)
            or (self.conditions is not None and self.conditions != item.conditions)
            or (self.sync_statuses is not None and self.sync_statuses != item.sync_statuses)
            or (self.applied is not None and self.applied != item.applied)
            or (
                self.observed_generation is not None
                and self.observed_generation != item.observed_generation
            )
        )


def _status(target: Target, phase: str, message: str, **extra: Any) -> dict[str, Any]:
    status = {
        "cluster": target.cluster,
        "namespace": target.namespace,
        "secretName": target.secret_name,
        "phase": phase,
        "message": message,
    }
    status.update({k: v for k, v in extra.items() if v is not None})
    return status


class Sync:
    """Copies through the provider's SecretSync capability (None: it has none)."""

    def __init__(self, provider: SecretSync | None) -> None:
        self.provider = provider

    async def converge(
        self,
        item: SecretItem,
        entry: SecretEntry,
        clusters: Clusters,
        now: datetime,
        check: LeaseCheck,
    ) -> tuple[list[dict[str, Any]], list[Applied]]:
        """Each target's status after bringing its copy to `entry`, and the copies Kupe now
        holds; copies no longer targeted are removed."""
        data = {key: value.encode() for key, value in entry.data.items()}
        previous = {status_key(s): s for s in item.sync_statuses}
        applied = {copy.key: copy for copy in item.applied}
        statuses: list[dict[str, Any]] = []
        for target in item.targets:
            found = clusters.get(target.cluster)
            if found is None:
                continue  # its cluster was deleted: dropped (see summarise)
            cluster_id, serving = found
            if self.provider is None:
                statuses.append(_status(target, "Error", "this provider cannot hold secrets"))
                continue
            if not serving:
                statuses.append(_status(target, "Pending", "waiting for the cluster to run"))
                continue
            before = previous.get(target.key, {})
            copy = applied.get(target.key)
            try:
                current = await self.provider.read_secret(
                    cluster_id, target.namespace, target.secret_name
                )
                fresh = (
                    copy is not None
                    and copy.cluster_id == cluster_id
                    and copy.source_version == entry.version
                    and current is not None
                    and dict(current.data) == data
                )
                synced_at = before.get("lastSyncedAt")
                if not fresh:
                    check()
                    await self.provider.write_secret(
                        cluster_id, self._copy(item, target, entry, data)
                    )
                    synced_at = rfc3339(now)
                applied[target.key] = Applied(
                    cluster_id, target.cluster, target.namespace, target.secret_name, entry.version
                )
                statuses.append(
                    _status(
                        target,
                        "Synced",
                        f"holds version {entry.version}",
                        lastSyncedAt=synced_at,
                        sourceVersion=entry.version,
                    )
                )
            except PermanentProviderError as exc:
                statuses.append(_status(target, "Error", str(exc)))
            except ProviderError as exc:
                statuses.append(_status(target, "Pending", f"retrying: {exc}"))
        wanted = {target.key for target in item.targets}
        kept = await self.remove(list(applied.values()), clusters, keep=wanted, check=check)
        return statuses, kept

    async def remove(
        self,
        copies: Sequence[Applied],
        clusters: Clusters,
        *,
        keep: Sequence[tuple[str, str, str]] | set[tuple[str, str, str]],
        check: LeaseCheck,
    ) -> list[Applied]:
        """Remove the copies not in `keep` (those of deleted clusters went with them); the
        copies that remain, including those that could not be removed yet."""
        remaining: list[Applied] = []
        for copy in copies:
            if copy.key in keep:
                remaining.append(copy)
                continue
            found = clusters.get(copy.cluster)
            if found is None or found[0] != copy.cluster_id or self.provider is None:
                continue
            try:
                check()
                await self.provider.delete_secret(copy.cluster_id, copy.namespace, copy.secret_name)
            except ProviderError:
                remaining.append(copy)  # tried again at the next look
        return remaining

    @staticmethod
    def _copy(
        item: SecretItem, target: Target, entry: SecretEntry, data: dict[str, bytes]
    ) -> SecretCopy:
        return SecretCopy(
            namespace=target.namespace,
            name=target.secret_name,
            data=data,
            labels={"kupe.io/managed-secret-name": item.name},
            annotations={
                SOURCE_VERSION: str(entry.version),
                DEFINITION_ANNOTATION: f"{item.tenant}/{item.name}",
            },
        )


def status_key(status: dict[str, Any]) -> tuple[str, str, str]:
    return (status["cluster"], status["namespace"], status["secretName"])


def summarise(
    item: SecretItem,
    statuses: list[dict[str, Any]],
    applied: Sequence[Applied],
    now: datetime,
    *,
    removed: bool = False,
    reason: str = "",
) -> SecretStatusUpdate:
    """The phase (Active only when every target is Synced), conditions and statuses."""
    if item.deleting:
        phase = "Deleting"
    elif any(s["phase"] == "Error" for s in statuses):
        phase = "Degraded"
    elif all(s["phase"] == "Synced" for s in statuses):
        phase = "Active"
    else:
        phase = "Pending"
    message = {
        "Active": "Every target holds the current value",
        "Degraded": reason or "Some targets could not be synced",
        "Pending": "Some targets wait for their cluster or a retry",
        "Deleting": "Removing the copies",
    }[phase]
    conditions = set_condition(item.conditions, "Ready", phase == "Active", phase, message, now)
    present = {status_key(s)[0] for s in statuses}
    dropped = [] if item.deleting else sorted({t.cluster for t in item.targets} - present)
    if dropped or any(c["type"] == "TargetsDropped" for c in conditions):
        conditions = set_condition(
            conditions,
            "TargetsDropped",
            bool(dropped),
            "ClusterDeleted" if dropped else "None",
            f"Clusters deleted: {', '.join(dropped)}"
            if dropped
            else "Every target's cluster exists",
            now,
        )
    return SecretStatusUpdate(
        failure_count=0,
        phase=phase,
        conditions=tuple(conditions),
        sync_statuses=tuple(statuses),
        applied=tuple(applied),
        observed_generation=item.generation,
        removed=removed,
    )
