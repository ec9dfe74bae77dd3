"""The wire form of clusters, and the cache of their renderings by resourceVersion."""

from __future__ import annotations

import json
from collections import OrderedDict

from kupe.core.phases import PROVISIONING_PHASES, ClusterPhase
from kupe.schemas.cluster import Cluster, HaPhase
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.db.refs import ObjectVersion

HA_REPLICAS = 3


def ha_phase(row: ClusterRow) -> HaPhase | None:
    """Where a highly available control plane stands (None: high availability is off)."""
    if not row.high_availability:
        return None
    if row.phase == ClusterPhase.MIGRATING:
        return "migrating"
    if row.ha_replicas_desired < HA_REPLICAS or row.phase in PROVISIONING_PHASES:
        return "pending"  # the change is recorded; the provider has not started on it
    if row.ha_replicas_ready >= row.ha_replicas_desired:
        return "ha-healthy"
    return "ha-degraded" if row.ha_replicas_ready > 0 else "ha-unavailable"


def cluster_view(row: ClusterRow) -> Cluster:
    """The wire form of a cluster row."""
    given = {"cpu": row.cpu, "memory": row.memory, "storage": row.storage}
    return Cluster.model_validate(
        {
            "name": row.name,
            "displayName": row.display_name,
            "type": row.type,
            "version": row.version,
            "resources": {k: v for k, v in given.items() if v is not None} or None,
            "alerts": row.alerts,
            "highAvailability": row.high_availability,
            "resourceVersion": str(row.resource_version),
            "generation": row.generation,
            "createdAt": row.created_at.replace(microsecond=0),
            "status": {
                "phase": row.phase,
                "kubernetesVersion": row.kubernetes_version,
                "endpoint": row.endpoint,
                "allocatedResources": {
                    "cpu": row.allocated_cpu,
                    "memory": row.allocated_memory,
                    "storage": row.allocated_storage,
                },
                "observedGeneration": row.observed_generation,
                "conditions": row.conditions,
                "haConfigured": row.high_availability,
                "haEnabledAt": row.ha_enabled_at.replace(microsecond=0)
                if row.ha_enabled_at
                else None,
                "haPhase": ha_phase(row),
                "haReplicasReady": row.ha_replicas_ready,
                "haReplicasDesired": row.ha_replicas_desired,
                "metrics": row.metrics,
            },
        }
    )


def render(model: Cluster) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)


def render_page(items: list[str], continue_token: str | None) -> str:
    """`ItemList[Cluster]` as JSON from already-rendered items (byte for byte what
    `ItemList(items=..., continue_=...).model_dump_json(by_alias=True, exclude_none=True)`
    gives)."""
    tail = (
        ""
        if continue_token is None
        else f',"continue":{json.dumps(continue_token, ensure_ascii=False)}'
    )
    return f'{{"items":[{",".join(items)}]{tail}}}'


class RenderedViews:
    """The wire JSON of cluster rows, by id, with the resourceVersion it renders.

    Every change to what a cluster shows moves its resourceVersion (the contract ETags and 304s
    already rely on), so a rendering stored under the row's current version is the rendering of
    the row: reads look the version up in the database and skip loading and re-validating the
    row. One entry per cluster (a new version replaces the old) and at most `max_chars` of JSON
    in all (~8 MB, some 10,000 clusters); the renderings made longest ago go first, which also
    retires those of clusters deleted since."""

    def __init__(self, max_chars: int = 8 * 2**20) -> None:
        self.max_chars = max_chars
        self._views: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._views)

    def get(self, version: ObjectVersion) -> str | None:
        found = self._views.get(version.id)
        return found[1] if found is not None and found[0] == version.resource_version else None

    def render(self, row: ClusterRow) -> str:
        """Render `row` and remember the result."""
        body = render(cluster_view(row))
        views = self._views
        replaced = views.pop(row.id, None)
        if replaced is not None:
            self._chars -= len(replaced[1])
        views[row.id] = (row.resource_version, body)
        self._chars += len(body)
        while self._chars > self.max_chars and len(views) > 1:
            _id, (_version, stale) = views.popitem(last=False)
            self._chars -= len(stale)
        return body
