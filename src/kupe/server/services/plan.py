"""The plan catalogue: built in, or replaced by the operator's KUPE_PLANS_FILE."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from kupe.core.errors import NotFound
from kupe.core.names import name_problem
from kupe.core.quantity import QuantityError, parse_cpu, parse_memory, parse_storage
from kupe.core.unlimited import UNLIMITED_COUNT, UNLIMITED_QUANTITY
from kupe.schemas.plan import ObservabilityPool, Plan, ResourceAmounts
from kupe.server.billing.rates import PlanTerms

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


class PlanCatalogueError(ValueError):
    """The operator's plan catalogue cannot be used; the message says where and why."""


class _ObservabilityEntry(ObservabilityPool):
    model_config = ConfigDict(extra="forbid")


class _PlanEntry(Plan):
    """A plan as an operator writes it: unknown (misspelt) fields are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")
    observability_pool: _ObservabilityEntry


_FEE = re.compile(r"\A[0-9]{1,9}\.[0-9]{2}\Z")


def _check_plan(plan: Plan) -> None:
    problem = name_problem(plan.name, "plan name")
    if problem:
        raise PlanCatalogueError(problem)
    if not _FEE.match(plan.platform_fee):
        raise PlanCatalogueError(
            f"plan {plan.name!r}: platformFee must be a decimal string with two places, "
            f'e.g. "49.00", not {plan.platform_fee!r}'
        )
    if plan.max_clusters is not None and plan.max_clusters < 0:
        raise PlanCatalogueError(f"plan {plan.name!r}: maxClusters must not be negative")
    for label, amounts in (
        ("resourcePool", plan.resource_pool),
        ("defaultClusterResources", plan.default_cluster_resources),
    ):
        if amounts is None:
            continue
        try:
            Amounts.of(amounts)
        except QuantityError as exc:
            raise PlanCatalogueError(f"plan {plan.name!r}: {label}: {exc}") from None


class PlanCatalogue:
    """Plans by name, in catalogue order."""

    def __init__(self, plans: list[Plan]) -> None:
        if not plans:
            raise PlanCatalogueError("the plan catalogue is empty")
        self._plans = {plan.name: plan for plan in plans}
        if len(self._plans) != len(plans):
            raise PlanCatalogueError("the plan catalogue names a plan twice")
        # Check every plan once so a bad catalogue fails at start, not on a request.
        for plan in plans:
            _check_plan(plan)
        self._pools = {
            p.name: Amounts.of(p.resource_pool) if p.resource_pool else None for p in plans
        }
        self._defaults = {p.name: p.default_cluster_resources for p in plans}

    @classmethod
    def built_in(cls) -> PlanCatalogue:
        return cls(TypeAdapter(list[Plan]).validate_python(_BUILT_IN))

    @classmethod
    def from_file(cls, path: Path) -> PlanCatalogue:
        """Load a YAML or JSON catalogue (a list of plans, or {"items": [...]}).

        Raises PlanCatalogueError naming the file and the first problem.
        """
        try:
            text = path.read_text()
        except OSError as exc:
            raise PlanCatalogueError(
                f"cannot read plan catalogue {path}: {exc.strerror or exc}"
            ) from None
        try:
            data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            kind = "JSON" if path.suffix == ".json" else "YAML"
            raise PlanCatalogueError(f"plan catalogue {path} is not valid {kind}: {exc}") from None
        if isinstance(data, dict) and "items" in data:
            data = data["items"]
        if not isinstance(data, list):
            raise PlanCatalogueError(
                f"plan catalogue {path} must be a list of plans (or an object with `items`)"
            )
        try:
            entries = TypeAdapter(list[_PlanEntry]).validate_python([_numbers(d) for d in data])
            plans = [Plan.model_validate(e.model_dump(by_alias=True)) for e in entries]
            return cls(plans)
        except ValidationError as exc:
            raise PlanCatalogueError(f"invalid plan catalogue {path}: {_first(exc)}") from None
        except PlanCatalogueError as exc:
            raise PlanCatalogueError(f"invalid plan catalogue {path}: {exc}") from None

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


UNLIMITED_POOL = ResourceAmounts(
    cpu=UNLIMITED_QUANTITY, memory=UNLIMITED_QUANTITY, storage=UNLIMITED_QUANTITY
)


def plan_view(plan: Plan) -> Plan:
    """A plan as the wire shows it: every limit present, "unlimited" written out (-1 for
    counts, "unlimited" for quantities) instead of left out."""
    obs = plan.observability_pool
    return plan.model_copy(
        update={
            "max_clusters": UNLIMITED_COUNT if plan.max_clusters is None else plan.max_clusters,
            "resource_pool": plan.resource_pool or UNLIMITED_POOL,
            "observability_pool": ObservabilityPool(
                max_active_series=_count(obs.max_active_series),
                log_ingest_gb=_count(obs.log_ingest_gb),
                retention_days=_count(obs.retention_days),
                max_receivers=_count(obs.max_receivers),
            ),
        }
    )


def _count(value: int | None) -> int:
    return UNLIMITED_COUNT if value is None else value


def _numbers(entry: Any) -> Any:
    """YAML reads `cpu: 4` as a number; quantities are strings on the wire."""
    if not isinstance(entry, dict):
        return entry
    out = dict(entry)
    for key in ("resourcePool", "defaultClusterResources"):
        amounts = out.get(key)
        if isinstance(amounts, dict):
            out[key] = {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for k, v in amounts.items()
            }
    return out


def _first(exc: ValidationError) -> str:
    """The first validation problem, as `items.0.maxClusters: message`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


__all__ = [
    "UNLIMITED_POOL",
    "ZERO",
    "Amounts",
    "ObservabilityPool",
    "Plan",
    "PlanCatalogue",
    "PlanCatalogueError",
    "plan_view",
]


def plan_terms(catalogue: PlanCatalogue) -> dict[str, PlanTerms]:
    """What billing needs of each plan: its fee and observability allowances."""

    def allowance(value: int | None) -> int | None:
        return None if value is None or value < 0 else value

    return {
        plan.name: PlanTerms(
            platform_fee=Decimal(plan.platform_fee),
            max_active_series=allowance(plan.observability_pool.max_active_series),
            log_ingest_gb=allowance(plan.observability_pool.log_ingest_gb),
        )
        for plan in catalogue.all()
    }
