"""The rendered-view cache and page assembly give byte for byte what the wire models give."""

from __future__ import annotations

from datetime import UTC, datetime

from kupe.schemas.cluster import Cluster
from kupe.schemas.common import ItemList
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.db.refs import ObjectVersion as ClusterVersion
from kupe.server.services.cluster_views import RenderedViews, cluster_view, render, render_page


def _row(name: str, resource_version: int) -> ClusterRow:
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return ClusterRow(
        id=f"id-{name}",
        tenant_id="t",
        name=name,
        display_name="Ünïcode name",
        type="shared",
        version="1.32",
        cpu="2",
        memory=None,
        storage="20Gi",
        allocated_cpu="2",
        allocated_memory="4Gi",
        allocated_storage="20Gi",
        cpu_millis=2000,
        memory_bytes=4 * 2**30,
        storage_bytes=20 * 2**30,
        alerts={"email": ["a@example.com"], "ratio": 0.1},
        high_availability=False,
        ha_replicas_ready=1,
        ha_replicas_desired=1,
        generation=2,
        observed_generation=1,
        resource_version=resource_version,
        created_at=now,
        phase="Running",
        kubernetes_version="v1.32.5",
        endpoint="https://x.t.kupe.localhost",
        conditions=[
            {
                "type": "Ready",
                "status": "True",
                "reason": "Running",
                "message": "ok",
                "lastTransitionTime": "2026-01-02T03:04:05Z",
            }
        ],
        metrics={},
    )


def test_page_matches_item_list() -> None:
    rows = [_row("a", 1), _row("b", 2)]
    for token in (None, "eyJhZnRlciI6ImIifQ"):
        expected = ItemList[Cluster](
            items=[cluster_view(row) for row in rows], continue_=token
        ).model_dump_json(by_alias=True, exclude_none=True)
        assert render_page([render(cluster_view(row)) for row in rows], token) == expected
    assert render_page([], None) == ItemList[Cluster](items=[]).model_dump_json(
        by_alias=True, exclude_none=True
    )


def test_views_are_keyed_by_resource_version_and_bounded() -> None:
    one = len(render(cluster_view(_row("a", 7))))
    views = RenderedViews(max_chars=10 * one)
    row = _row("a", 7)
    body = views.render(row)
    assert body == render(cluster_view(row))
    assert views.get(ClusterVersion(row.id, 7, "a")) == body
    assert views.get(ClusterVersion(row.id, 8, "a")) is None
    # A cluster's new version replaces its old rendering: a busy cluster holds one entry.
    for version in range(100, 130):
        views.render(_row("b", version))
    assert len(views) == 2
    assert views.get(ClusterVersion("id-b", 129, "b")) is not None
    assert views.get(ClusterVersion("id-b", 128, "b")) is None
    # Many clusters: never more than max_chars of JSON, the oldest renderings go first.
    for n in range(30):
        views.render(_row(f"c{n}", 1))
    assert len(views) <= 10
    assert views.get(ClusterVersion("id-c29", 1, "c29")) is not None
    assert views.get(ClusterVersion(row.id, 7, "a")) is None
