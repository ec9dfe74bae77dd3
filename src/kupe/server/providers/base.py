"""The provider protocol: idempotent observe / ensure / delete, keyed by a cluster's stable id.

Providers never see the database; the reconciler hands them a spec and records what they say.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class ProviderError(Exception):
    """A provider call did not succeed."""


class TransientProviderError(ProviderError):
    """Worth retrying with backoff (timeouts, throttling, a flaky API)."""


class PermanentProviderError(ProviderError):
    """Retrying will not help (quota, invalid request); the cluster becomes Failed."""


@dataclass(frozen=True)
class ClusterSpec:
    """What the platform wants a cluster to be."""

    id: str
    tenant: str
    name: str
    type: str
    version: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


class InfraPhase(StrEnum):
    CREATING = "creating"
    READY = "ready"
    UPDATING = "updating"
    UNHEALTHY = "unhealthy"
    DELETING = "deleting"


@dataclass(frozen=True)
class InfraState:
    """What the infrastructure reports about one cluster."""

    id: str
    phase: InfraPhase
    version: str
    kubernetes_version: str
    endpoint: str
    ca_certificate: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    message: str = ""

    def matches(self, spec: ClusterSpec) -> bool:
        """True when the infrastructure runs exactly the spec."""
        return (
            self.version == spec.version
            and self.cpu_millis == spec.cpu_millis
            and self.memory_bytes == spec.memory_bytes
            and self.storage_bytes == spec.storage_bytes
        )


class Provider(Protocol):
    """Provisions clusters. Every method is idempotent and safe to call again after a crash.

    A provider may subclass this protocol to inherit the default `observe_many`.
    """

    name: str

    async def observe(self, cluster_id: str) -> InfraState | None:
        """The cluster as the infrastructure sees it, or None when it does not exist."""
        ...

    async def observe_many(self, cluster_ids: Sequence[str]) -> dict[str, InfraState | None]:
        """`observe` for many clusters at once, keyed by id (None: it does not exist); the
        periodic resync of settled clusters calls this once per batch. Like `observe` it never
        changes the infrastructure, and it fails as a whole. This default asks one by one; a
        provider whose API can describe many clusters in one call should override it."""
        return {cluster_id: await self.observe(cluster_id) for cluster_id in cluster_ids}

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        """Create the cluster or move it towards `spec`; returns the state after the call."""
        ...

    async def delete(self, cluster_id: str) -> InfraState | None:
        """Start or continue teardown; None once the cluster is gone."""
        ...
