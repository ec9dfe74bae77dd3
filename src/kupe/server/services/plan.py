"""The plan catalogue: built in, or replaced by the operator's KUPE_PLANS_FILE."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from kupe.core.errors import NotFound
from kupe.core.quantity import parse_cpu, parse_memory, parse_storage
from kupe.schemas.plan import ObservabilityPool, Plan, ResourceAmounts

_BUILT_IN: list[dict[str, Any]] = [
    {
        "name": "starter",
        "displayName": "Starter",
        "platformFee": "0.00",
        "maxClusters": 2,
        "resourcePool": {"cpu": "4", "memory": "8Gi", "storage": "50Gi"},
        "observabilityPool": {
            "maxActiveSeries": 10_000,
            "logIngestGB": 10,
            "retentionDays": 14,
            "maxReceivers": 2,
        },
        "dedicatedClusters": False,
        "defaultClusterResources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
    },
    {
        "name": "pro",
        "displayName": "Pro",
        "platformFee": "49.00",
        "maxClusters": 5,
        "resourcePool": {"cpu": "8", "memory": "32Gi", "storage": "200Gi"},
        "observabilityPool": {
            "maxActiveSeries": 50_000,
            "logIngestGB": 50,
            "retentionDays": 90,
            "maxReceivers": 10,
        },
        "dedicatedClusters": False,
        "defaultClusterResources": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
    },
    {
        "name": "business",
        "displayName": "Business",
        "platformFee": "249.00",
        "maxClusters": 20,
        "resourcePool": {"cpu": "64", "memory": "256Gi", "storage": "2000Gi"},
        "observabilityPool": {
            "maxActiveSeries": 250_000,
            "logIngestGB": 250,
            "retentionDays": 180,
            "maxReceivers": 50,
        },
        "dedicatedClusters": True,
        "defaultClusterResources": {"cpu": "2", "memory": "8Gi", "storage": "50Gi"},
    },
    {
        "name": "enterprise",
        "displayName": "Enterprise",
        "platformFee": "0.00",
        "maxClusters": None,
        "resourcePool": None,
        "observabilityPool": {},
        "dedicatedClusters": True,
        "defaultClusterResources": {"cpu": "4", "memory": "16Gi", "storage": "100Gi"},
    },
]


@dataclass(frozen=True)
class Amounts:
    """Exact resource amounts: millicores and bytes."""

    cpu_millis: int
    memory_bytes: int
    storage_bytes: int

    @classmethod
    def of(cls, amounts: ResourceAmounts) -> Amounts:
        return cls(
            parse_cpu(amounts.cpu), parse_memory(amounts.memory), parse_storage(amounts.storage)
        )

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.cpu_millis + other.cpu_millis,
            self.memory_bytes + other.memory_bytes,
            self.storage_bytes + other.storage_bytes,
        )

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(
            self.cpu_millis - other.cpu_millis,
            self.memory_bytes - other.memory_bytes,
            self.storage_bytes - other.storage_bytes,
        )


ZERO = Amounts(0, 0, 0)


class PlanCatalogue:
    """Plans by name, in catalogue order."""

    def __init__(self, plans: list[Plan]) -> None:
        if not plans:
            raise ValueError("the plan catalogue is empty")
        self._plans = {plan.name: plan for plan in plans}
        if len(self._plans) != len(plans):
            raise ValueError("the plan catalogue names a plan twice")
        # Parse every quantity once so a bad catalogue fails at start, not on a request.
        self._pools = {
            p.name: Amounts.of(p.resource_pool) if p.resource_pool else None for p in plans
        }
        self._defaults = {p.name: p.default_cluster_resources for p in plans}
        for plan in plans:
            Amounts.of(plan.default_cluster_resources)

    @classmethod
    def built_in(cls) -> PlanCatalogue:
        return cls(TypeAdapter(list[Plan]).validate_python(_BUILT_IN))

    @classmethod
    def from_file(cls, path: Path) -> PlanCatalogue:
        """Load a YAML or JSON catalogue (a list of plans, or {"items": [...]})."""
        text = path.read_text()
        data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if isinstance(data, dict) and "items" in data:
            data = data["items"]
        try:
            return cls(TypeAdapter(list[Plan]).validate_python(data))
        except ValidationError as exc:
            raise ValueError(f"invalid plan catalogue {path}: {exc}") from exc

    @classmethod
    def load(cls, path: Path | None) -> PlanCatalogue:
        return cls.from_file(path) if path else cls.built_in()

    def all(self) -> list[Plan]:
        return list(self._plans.values())

    def get(self, name: str) -> Plan:
        try:
            return self._plans[name]
        except KeyError:
            raise NotFound(f"Plan {name!r} not found") from None

    def __contains__(self, name: str) -> bool:
        return name in self._plans

    def pool(self, name: str) -> Amounts | None:
        """The plan's resource pool, or None when unlimited."""
        return self._pools[name]

    def defaults(self, name: str) -> ResourceAmounts:
        return self._defaults[name]


__all__ = ["ZERO", "Amounts", "ObservabilityPool", "Plan", "PlanCatalogue"]
