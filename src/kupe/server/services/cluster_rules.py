"""The rules of a cluster change: what a PATCH means for each field, which versions may follow
which, high availability, and the plan's limits with the messages the hosted API gives."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from kupe.core.clock import Clock
from kupe.core.errors import BadRequest, ImmutableField, PlanLimitExceeded, ValidationFailed
from kupe.core.merge_patch import merge_patch
from kupe.core.quantity import parse_cpu, parse_memory, parse_storage
from kupe.core.versions import VersionCatalogue
from kupe.schemas.cluster import ClusterUpdate
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.db.repositories.cluster import Limits, Usage
from kupe.server.services.auth import Principal
from kupe.server.services.limits import excesses
from kupe.server.services.plan import Amounts, PlanCatalogue

_PARSE = {"cpu": parse_cpu, "memory": parse_memory, "storage": parse_storage}
_AMOUNT_COLUMN = {"cpu": "cpu_millis", "memory": "memory_bytes", "storage": "storage_bytes"}


@dataclass(frozen=True)
class ClusterFeatures:
    """What the provider's clusters can do, as far as the rules need to know."""

    high_availability: bool = False
    # The clusters check bearer tokens with Kupe (short-lived cluster credentials).
    kupe_tokens: bool = False


@dataclass(frozen=True)
class ClusterChange:
    """What a PATCH changes; None fields stay as they are."""

    version: str | None = None
    cpu: str | None = None
    memory: str | None = None
    storage: str | None = None
    allocated_cpu: str | None = None
    allocated_memory: str | None = None
    allocated_storage: str | None = None
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    storage_bytes: int | None = None
    alerts: dict[str, Any] | None = None
    clear_alerts: bool = False
    high_availability: bool | None = None
    ha_enabled_at: datetime | None = None

    @property
    def empty(self) -> bool:
        return self == ClusterChange()

    @property
    def resizes(self) -> bool:
        return (self.cpu_millis, self.memory_bytes, self.storage_bytes) != (None, None, None)

    def columns(self) -> dict[str, Any]:
        values = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "clear_alerts" and getattr(self, f.name) is not None
        }
        if self.clear_alerts:
            values["alerts"] = None
        return values


class ClusterRules:
    """The checks a create or a PATCH goes through, for one installation's plans and versions."""

    def __init__(
        self,
        plans: PlanCatalogue,
        versions: VersionCatalogue,
        clock: Clock,
        features: ClusterFeatures,
    ) -> None:
        self.plans = plans
        self.versions = versions
        self.clock = clock
        self.features = features

    def limits(self, plan_name: str) -> Limits:
        plan = self.plans.get(plan_name)
        pool = self.plans.pool(plan_name)
        return Limits(
            max_clusters=plan.max_clusters,
            cpu_millis=pool.cpu_millis if pool else None,
            memory_bytes=pool.memory_bytes if pool else None,
            storage_bytes=pool.storage_bytes if pool else None,
        )

    def change(self, row: ClusterRow, patch: ClusterUpdate, given: set[str]) -> ClusterChange:
        values: dict[str, Any] = {}
        # The hosted Terraform provider sends "" for a version its configuration leaves out.
        if "version" in given and patch.version != "":
            if patch.version is None:
                raise ValidationFailed("version cannot be null", field="version")
            self.versions.check_upgrade(row.version, patch.version)
            if patch.version != row.version:
                values["version"] = patch.version
        if "resources" in given:
            if patch.resources is None:
                raise ValidationFailed("resources cannot be null", field="resources")
            for key, parse in _PARSE.items():
                if key not in patch.resources.model_fields_set:
                    continue
                text = getattr(patch.resources, key)
                if text is None:
                    raise ValidationFailed(f"{key} cannot be null", field=f"resources.{key}")
                amount = parse(text)
                if text != getattr(row, key):
                    values[key] = text  # now set by the client, and so echoed
                if text != getattr(row, f"allocated_{key}"):
                    values[f"allocated_{key}"] = text
                if amount != getattr(row, _AMOUNT_COLUMN[key]):
                    values[_AMOUNT_COLUMN[key]] = amount
        if "alerts" in given:
            alerts = None if patch.alerts is None else merge_patch(row.alerts or {}, patch.alerts)
            if alerts != row.alerts:
                if alerts is None:
                    values["clear_alerts"] = True
                else:
                    values["alerts"] = alerts
        if "high_availability" in given and patch.high_availability != row.high_availability:
            if not patch.high_availability:
                raise BadRequest(
                    "high availability cannot be turned off once it is on",
                    code="HA_DISABLE_UNSUPPORTED",
                    field="highAvailability",
                )
            self.check_high_availability()
            values.update(high_availability=True, ha_enabled_at=self.clock.now())
        return ClusterChange(**values)

    def check_high_availability(self) -> None:
        if not self.features.high_availability:
            raise BadRequest(
                "this installation's provider does not run highly available control planes",
                code="HA_UNSUPPORTED",
                field="highAvailability",
            )

    def check_limits(
        self, principal: Principal, usage: Usage, wanted: Amounts, *, adding_cluster: bool
    ) -> None:
        plan = self.plans.get(principal.tenant.plan)
        found = excesses(
            plan, self.plans.pool(plan.name), usage, adding=wanted, adding_cluster=adding_cluster
        )
        if not found:
            return
        excess = found[0]
        if excess.limit == "maxClusters":
            raise PlanLimitExceeded(
                f"The {plan.name} plan allows at most {excess.allowed} clusters and the tenant "
                f"already has {excess.held}: maximum cluster limit reached"
            )
        total, allowed, held, over = excess.amounts()
        raise PlanLimitExceeded(
            f"{excess.limit}: this request would bring the tenant to {total} of the "
            f"{plan.name} plan's pool of {allowed} ({held} already allocated), "
            f"exceeding it by {over}",
            field=f"resources.{excess.limit}",
        )


def check_immutable(row: ClusterRow, patch: ClusterUpdate, given: set[str]) -> None:
    for attr, wire in (("name", "name"), ("display_name", "displayName"), ("type", "type")):
        if attr in given and getattr(patch, attr) != getattr(row, attr):
            raise ImmutableField(f"{wire} is immutable", field=wire)
