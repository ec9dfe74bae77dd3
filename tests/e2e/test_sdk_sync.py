"""The sync Client against a real server on loopback: the lifecycle in real (short) time."""

from __future__ import annotations

import uuid

import httpx
import pytest

from kupe.schemas.cluster import Cluster, ClusterUpdate, ResourcesInput
from kupe.sdk import Client, ClusterFailed, NotFound
from tests.support.live_server import LiveKupe
from tests.support.phases import assert_seen_along

pytestmark = pytest.mark.slow


def test_lifecycle_with_conditional_polling(live_server: LiveKupe) -> None:
    statuses: list[tuple[str, int]] = []

    def record(response: httpx.Response) -> None:
        statuses.append((response.request.method, response.status_code))

    name = f"sync-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(event_hooks={"response": [record]}) as http,
        Client(
            live_server.url,
            api_key=live_server.key,
            tenant="default",
            http_client=http,
            watch=False,  # polling, as against a server without watch
        ) as kupe,
    ):
        created = kupe.clusters.create(name, display_name="Sync", type="shared", version="1.32")
        assert created.status.phase == "Pending"
        phases: list[str] = []
        running = kupe.clusters.wait(
            name, timeout=60, poll_interval=0.1, on_change=lambda c: phases.append(c.status.phase)
        )
        assert running.status.phase == "Running"
        assert_seen_along(phases, ("Pending", "Provisioning", "Running"))
        assert ("GET", 304) in statuses  # unchanged polls cost a 304

        def more_memory(cluster: Cluster) -> ClusterUpdate:
            return ClusterUpdate(resources=ResourcesInput(memory="6Gi"))

        modified = kupe.clusters.modify(name, more_memory)
        assert modified.resources.memory == "6Gi"
        applied = kupe.clusters.wait(name, timeout=60, poll_interval=0.1)
        assert applied.status.observed_generation == applied.generation == 2

        details = kupe.clusters.connection_details(name)
        assert details.endpoint == applied.status.endpoint
        document = kupe.clusters.kubeconfig(name)
        assert document["current-context"] == f"kupe-default-{name}"

        kupe.clusters.delete(name)
        kupe.clusters.wait_deleted(name, timeout=60, poll_interval=0.1)
        with pytest.raises(NotFound):
            kupe.clusters.get(name)


def test_wait_watches_when_the_server_offers_it(live_server: LiveKupe) -> None:
    requests: list[str] = []

    def record(request: httpx.Request) -> None:
        requests.append(str(request.url))

    name = f"watch-{uuid.uuid4().hex[:8]}"
    with (
        httpx.Client(event_hooks={"request": [record]}) as http,
        Client(
            live_server.url, api_key=live_server.key, tenant="default", http_client=http
        ) as kupe,
    ):
        kupe.clusters.create(name, display_name="Watch", type="shared")
        phases: list[str] = []
        running = kupe.clusters.wait(
            name, timeout=60, poll_interval=0.1, on_change=lambda c: phases.append(c.status.phase)
        )
        assert running.status.phase == "Running"
        assert_seen_along(phases, ("Pending", "Provisioning", "Running"))
        watches = [url for url in requests if "watch=true" in url]
        assert watches, requests
        # One GET, then the watch: no polling.
        assert len(requests) <= 4, requests
        timeline = kupe.clusters.events(name)
        assert [item.reason for item in timeline.items][:1] == ["Created"]
        assert "Running" in [item.reason for item in timeline.items]
        # The watch iterator: the current state first, then (here) the deletion.
        stream = kupe.clusters.watch(name)
        first = next(stream)
        assert first.type == "ADDED"
        assert first.cluster is not None
        assert first.cluster.name == name
        kupe.clusters.delete(name)
        kupe.clusters.wait_deleted(name, timeout=60)
        types = []
        for event in stream:
            types.append(event.type)
            if event.type == "DELETED":
                break
        assert types[-1] == "DELETED"
        assert "MODIFIED" in types


def test_failed_cluster_raises_with_reason(live_server: LiveKupe) -> None:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    with Client(live_server.url, api_key=live_server.key, tenant="default") as kupe:
        kupe.clusters.create(name, display_name="Doomed", type="shared")
        with pytest.raises(ClusterFailed) as caught:
            kupe.clusters.wait(name, timeout=60, poll_interval=0.1)
        assert "matches '^doomed'" in caught.value.reason
        kupe.clusters.delete(name)
