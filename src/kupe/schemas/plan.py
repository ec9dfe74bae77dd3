"""Plan wire models (API §2)."""

from __future__ import annotations

from pydantic import Field

from kupe.schemas.common import ResponseModel, WireModel


class ResourceAmounts(WireModel):
    """Kubernetes quantities for cpu, memory and storage."""

    cpu: str = Field(examples=["4"])
    memory: str = Field(examples=["16Gi"])
    storage: str = Field(examples=["100Gi"])


class ObservabilityPool(ResponseModel):
    """Observability limits of a plan; -1 means unlimited."""

    max_active_series: int | None = None
    log_ingest_gb: int | None = Field(None, alias="logIngestGB")
    retention_days: int | None = None
    max_receivers: int | None = None


class Plan(ResponseModel):
    """A plan of the catalogue."""

    name: str
    display_name: str
    platform_fee: str = Field(description="Monthly fee in GBP, two decimal places.")
    max_clusters: int | None = Field(None, description="-1: unlimited.")
    resource_pool: ResourceAmounts | None = Field(
        None, description='Quantities; "unlimited" in each when the plan has no pool.'
    )
    observability_pool: ObservabilityPool
    dedicated_clusters: bool
    default_cluster_resources: ResourceAmounts
