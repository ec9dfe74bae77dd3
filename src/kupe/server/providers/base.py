"""The provider protocol: idempotent observe / ensure / delete, keyed by a cluster's stable id.

Providers never see the database; the reconciler hands them a spec and records what they say.
What only some providers can do is an optional capability (a protocol of its own, below): the
platform asks `isinstance(provider, Capability)` instead of knowing providers by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class ProviderError(Exception):
    """A provider call did not succeed."""


class TransientProviderError(ProviderError):
    """Worth retrying with backoff (timeouts, throttling, a flaky API)."""


class PermanentProviderError(ProviderError):
    """Retrying will not help (quota, invalid request); the cluster becomes Failed."""


@dataclass(frozen=True)
class ClusterSpec:
    """What the platform wants a cluster to be: its effective (allocated) resources, never
    the partial `resources` a client sent."""

    id: str
    tenant: str
    name: str
    type: str
    version: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    # The cluster's `alerts` document as canonical JSON ("" when it has none), so the spec
    # stays hashable and comparable; providers that apply alert overrides parse it.
    alerts: str = ""
    high_availability: bool = False


class InfraPhase(StrEnum):
    CREATING = "creating"
    READY = "ready"
    UPDATING = "updating"
    # Moving to a highly available (three-replica) control plane.
    MIGRATING = "migrating"
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
    # Why the infrastructure is in this phase, in words for the cluster's conditions (e.g.
    # "waiting for capacity: 4 of 4 local clusters run"); empty when there is nothing to say.
    message: str = ""
    alerts: str = ""
    high_availability: bool = False
    control_plane_replicas_ready: int = 1
    control_plane_replicas_desired: int = 1

    def matches(self, spec: ClusterSpec) -> bool:
        """True when the infrastructure runs exactly the spec."""
        return (
            self.version == spec.version
            and self.cpu_millis == spec.cpu_millis
            and self.memory_bytes == spec.memory_bytes
            and self.storage_bytes == spec.storage_bytes
            and self.alerts == spec.alerts
            and self.high_availability == spec.high_availability
        )


class Provider(Protocol):
    """Provisions clusters. Every method is idempotent and safe to call again after a crash.

    A provider may subclass this protocol to inherit the defaults of `observe_many`,
    `offered_versions` and `aclose`.
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

    def offered_versions(self) -> Sequence[str] | None:
        """The Kubernetes minors ("1.36") this provider can run now, or None for every minor
        of the installation's catalogue."""
        return None

    async def aclose(self) -> None:
        """Release what the provider holds (files, threads, connections). Clusters it runs
        keep running: a restarted process adopts them."""
        return None


# -- optional capabilities ---------------------------------------------------------------------


@runtime_checkable
class HighAvailability(Protocol):
    """The provider can run a three-replica control plane (`ClusterSpec.high_availability`)."""

    def supports_high_availability(self) -> bool: ...


@dataclass(frozen=True)
class SecretCopy:
    """A Kubernetes Secret as Kupe keeps it in a cluster."""

    namespace: str
    name: str
    data: Mapping[str, bytes] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


class SecretConflict(PermanentProviderError):
    """A Secret of that name exists in the cluster and Kupe does not manage it."""


@runtime_checkable
class SecretSync(Protocol):
    """The provider can write Kubernetes Secrets into the clusters it runs."""

    async def read_secret(self, cluster_id: str, namespace: str, name: str) -> SecretCopy | None:
        """The Secret as the cluster holds it, or None when there is none."""
        ...

    async def write_secret(self, cluster_id: str, secret: SecretCopy) -> None:
        """Create or replace a Secret that Kupe manages; SecretConflict if the cluster has one
        of that name that Kupe does not manage (it is left untouched)."""
        ...

    async def delete_secret(self, cluster_id: str, namespace: str, name: str) -> None:
        """Remove a Secret Kupe manages; nothing when it is gone or not Kupe's."""
        ...


@runtime_checkable
class TokenAuthentication(Protocol):
    """The provider's clusters check bearer tokens with Kupe (a TokenReview webhook served by
    Kupe), so Kupe can hand out short-lived per-cluster credentials."""

    def accepts_kupe_tokens(self) -> bool: ...
