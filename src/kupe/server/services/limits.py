"""The one check of a tenant's holdings against a plan's limits: a create or resize that would
exceed them (403), and a plan change below what the tenant already holds (409)."""

from __future__ import annotations

from dataclasses import dataclass

from kupe.core.quantity import format_bytes, format_cpu
from kupe.schemas.plan import Plan
from kupe.server.db.repositories.cluster import Usage
from kupe.server.services.plan import ZERO, Amounts

_FORMAT = {"cpu": format_cpu, "memory": format_bytes, "storage": format_bytes}


@dataclass(frozen=True)
class Excess:
    """One limit the tenant would exceed: `total` against `allowed`, `held` before."""

    limit: str  # "maxClusters", "cpu", "memory" or "storage"
    total: int
    allowed: int
    held: int

    def amounts(self) -> tuple[str, str, str, str]:
        """total, allowed, held and the excess, formatted as quantities (or counts)."""
        fmt = _FORMAT.get(self.limit, str)
        return fmt(self.total), fmt(self.allowed), fmt(self.held), fmt(self.total - self.allowed)


def excesses(
    plan: Plan,
    pool: Amounts | None,
    usage: Usage,
    *,
    adding: Amounts = ZERO,
    adding_cluster: bool = False,
) -> list[Excess]:
    """Every limit of `plan` that `usage` plus `adding` (and one more cluster, if
    `adding_cluster`) goes beyond; empty when it all fits."""
    found: list[Excess] = []
    clusters = usage.clusters + (1 if adding_cluster else 0)
    if plan.max_clusters is not None and clusters > plan.max_clusters:
        found.append(Excess("maxClusters", clusters, plan.max_clusters, usage.clusters))
    if pool is not None:
        held = Amounts(usage.cpu_millis, usage.memory_bytes, usage.storage_bytes)
        total = held + adding
        for field, need, allowed, before in (
            ("cpu", total.cpu_millis, pool.cpu_millis, held.cpu_millis),
            ("memory", total.memory_bytes, pool.memory_bytes, held.memory_bytes),
            ("storage", total.storage_bytes, pool.storage_bytes, held.storage_bytes),
        ):
            if need > allowed:
                found.append(Excess(field, need, allowed, before))
    return found
