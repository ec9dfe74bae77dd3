"""Cluster wire models (API §4): what clients send and what the server answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, JsonValue, StrictBool, field_validator
from pydantic_core import PydanticCustomError

from kupe.core.names import name_problem
from kupe.core.quantity import QuantityError, parse_cpu, parse_memory, parse_storage
from kupe.schemas.cluster_alerts import check_managed_rules
from kupe.schemas.common import (
    MAX_NESTING,
    ResponseModel,
    Timestamp,
    WireModel,
    check_display_name,
    json_depth,
)

ClusterType = Literal["shared", "dedicated"]
ClusterPhase = Literal[
    "Pending",
    "Provisioning",
    "Running",
    "Upgrading",
    "Migrating",
    "Degraded",
    "Failed",
    "Terminating",
]
HaPhase = Literal["pending", "migrating", "ha-healthy", "ha-degraded", "ha-unavailable"]
ALERTS_MAX_BYTES = 64 * 1024
ALERTS_MAX_DEPTH = MAX_NESTING
# Documentation only (the validators below give the friendlier messages): lets clients and
# schema-driven tools know what a valid value looks like.
NAME_SCHEMA: dict[str, JsonValue] = {
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "minLength": 2,
    "maxLength": 63,
}
CPU_SCHEMA: dict[str, JsonValue] = {"pattern": "^[0-9]+(\\.[0-9]+)?m?$"}
BYTES_SCHEMA: dict[str, JsonValue] = {
    "pattern": "^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)$"
}
VERSION_SCHEMA: dict[str, JsonValue] = {"pattern": "^[0-9]+\\.[0-9]+$"}


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("kupe_invalid", message)


def _quantity(parse: Callable[[str], int], value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse(value)
    except QuantityError as exc:
        raise _invalid(str(exc)) from None
    return value


def check_alerts(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Alerts are an object of at most 64 KiB and bounded nesting; its `managedRules` name
    only rules of the platform's catalogue (see cluster_alerts)."""
    if value is None:
        return None
    if json_depth(value) > ALERTS_MAX_DEPTH:
        raise _invalid(f"alerts must not nest deeper than {ALERTS_MAX_DEPTH} levels")
    if len(json.dumps(value, separators=(",", ":")).encode()) > ALERTS_MAX_BYTES:
        raise _invalid("alerts must be at most 64 KiB")
    check_managed_rules(value)
    return value


class ResourcesInput(WireModel):
    """Requested resources; a field left out takes the plan's default (create) or stays (PATCH)."""

    cpu: str | None = Field(
        None, examples=["4"], description="Cores: 4, 1.5 or 500m.", json_schema_extra=CPU_SCHEMA
    )
    memory: str | None = Field(
        None,
        examples=["16Gi"],
        description="With a unit, e.g. 16Gi.",
        json_schema_extra=BYTES_SCHEMA,
    )
    storage: str | None = Field(
        None,
        examples=["100Gi"],
        description="With a unit, e.g. 100Gi.",
        json_schema_extra=BYTES_SCHEMA,
    )

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str | None) -> str | None:
        return _quantity(parse_cpu, value)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        return _quantity(parse_memory, value)

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str | None) -> str | None:
        return _quantity(parse_storage, value)


class ClusterCreate(WireModel):
    """Body of POST /clusters."""

    name: str = Field(
        description="DNS label, 2-63 characters; immutable.", json_schema_extra=NAME_SCHEMA
    )
    display_name: str = Field(min_length=1, max_length=200, description="Immutable.")
    type: ClusterType = Field(description="Immutable.")
    version: str | None = Field(
        None,
        description="Kubernetes minor; default the newest.",
        json_schema_extra=VERSION_SCHEMA,
    )
    resources: ResourcesInput | None = Field(
        None,
        description="What is left out takes the plan's default cluster resources (in "
        "status.allocatedResources); `resources` echoes only what was given.",
    )
    alerts: dict[str, Any] | None = Field(
        None,
        description="Overrides of the platform's managed alerting rules in `managedRules` "
        '(e.g. {"managedRules": {"podCrashLooping": {"enabled": true}}}; all are off by '
        f"default); otherwise free-form. At most 64 KiB and {ALERTS_MAX_DEPTH} levels deep.",
    )
    high_availability: StrictBool | None = Field(
        None, description="A three-replica control plane; default false."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise _invalid(problem)
        return value

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, value: str) -> str:
        return check_display_name(value)

    @field_validator("alerts")
    @classmethod
    def _alerts(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_alerts(value)


class ClusterUpdate(WireModel):
    """Body of PATCH /clusters/{name}: a JSON merge patch of the mutable fields."""

    name: str | None = None
    display_name: str | None = None
    type: str | None = None
    version: str | None = None
    resources: ResourcesInput | None = None
    alerts: dict[str, Any] | None = Field(None, description="null clears the alerts.")
    high_availability: StrictBool | None = Field(
        None, description="true moves a Running cluster to three replicas; false after true: 400."
    )

    @field_validator("alerts")
    @classmethod
    def _alerts(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_alerts(value)


class Resources(ResponseModel):
    """Effective resources: every one of cpu, memory and storage."""

    cpu: str
    memory: str
    storage: str


class ResourcesSet(ResponseModel):
    """Resources exactly as the client set them: fields never set are absent."""

    cpu: str | None = None
    memory: str | None = None
    storage: str | None = None


class Condition(ResponseModel):
    """A Kubernetes-style condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: Timestamp


class ClusterStatus(ResponseModel):
    """What the platform observed; only the reconciler changes it."""

    phase: ClusterPhase
    kubernetes_version: str | None = None
    endpoint: str | None = None
    # Optional for clients: older servers (and the hosted API before these fields) omit them.
    allocated_resources: Resources | None = Field(
        None,
        description="The effective resources: what the client set, plan defaults for the "
        "rest; quotas and billing use these.",
    )
    observed_generation: int
    conditions: list[Condition]
    ha_configured: bool = Field(False, description="highAvailability is on.")
    ha_enabled_at: Timestamp | None = Field(None, description="When it was turned on.")
    ha_phase: HaPhase | None = Field(None, description="Present while haConfigured.")
    ha_replicas_ready: int | None = Field(None, description="Control-plane replicas serving.")
    ha_replicas_desired: int | None = Field(
        None, description="Control-plane replicas wanted: 1 or 3."
    )
    metrics: dict[str, Any] = Field(default_factory=dict)


class Cluster(ResponseModel):
    """A managed Kubernetes cluster."""

    name: str
    display_name: str
    type: ClusterType
    version: str
    resources: ResourcesSet | None = Field(
        None, description="Exactly as the client set them; absent when never set."
    )
    alerts: dict[str, Any] | None = None
    high_availability: bool = False
    resource_version: str
    generation: int
    created_at: Timestamp
    status: ClusterStatus


class ConnectionDetails(ResponseModel):
    """How to reach a cluster's API server; contains no credential."""

    endpoint: str
    certificate_authority: str = Field(description="Base64 of the PEM CA certificate.")
