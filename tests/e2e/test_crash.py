"""kill -9 a real `kupe serve` while its clusters are provisioned and again while they are torn
down, restart it, and check that every accepted request converged and that the (shared,
durable) simulated cloud saw each cluster created exactly once and deleted exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kupe.server.providers.simulated import read_inventory
from tests.support.server_process import (
    Api,
    KupeProcess,
    ProcessGroup,
    operations_by_pid,
    process_group,
    wait_for,
)

pytestmark = pytest.mark.slow
CLUSTERS = 12


@pytest.fixture
def group(tmp_path: Path, database_url: str) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, {"KUPE_DATABASE_URL": database_url}) as processes:
        yield processes


def assert_exactly_once(group: ProcessGroup, operation: str, expected: set[str]) -> None:
    """The cloud's ledger shows `operation` once per cluster in `expected`, and nothing else."""
    done = Counter(e.cluster_id for e in group.ledger() if e.operation == operation)
    twice = {cluster_id for cluster_id, count in done.items() if count > 1}
    assert not twice, f"{operation} happened more than once for {twice}"
    assert set(done) == expected, f"{operation}: ledger {set(done)} != {expected}"


def assert_metrics_match_ledger(
    group: ProcessGroup, operation: str, live: KupeProcess, total: int
) -> None:
    """kupe_provider_operations_total of the live process equals what the cloud attributes to
    it; with what the cloud attributes to the killed incarnations, that sums to `total`."""
    by_pid = operations_by_pid(group.ledger(), operation)
    assert live.provider_operations(operation) == by_pid.get(live.pid, 0)
    dead = sum(count for pid, count in by_pid.items() if pid != live.pid)
    assert live.provider_operations(operation) + dead == total


def test_kill_9_during_provisioning_and_deletion_converges_exactly_once(
    group: ProcessGroup,
) -> None:
    server = group.serve().wait_ready()
    api = Api(server.url, group.api_key())
    names = [f"crash-{i:02d}" for i in range(CLUSTERS)]

    assert api.concurrently(api.create, names) == [201] * CLUSTERS
    wait_for(
        "the cloud to start creating",
        lambda: any(e.operation == "create" for e in group.ledger()),
        every=0.01,
    )
    server.kill()

    server.restart().wait_ready()
    wait_for("every cluster Running", lambda: api.all_at("Running", names), timeout=90)
    inventory = read_inventory(group.cloud)
    assert sorted(inventory.values()) == [f"default/{name}" for name in names]
    assert_exactly_once(group, "create", set(inventory))
    assert_metrics_match_ledger(group, "create", server, CLUSTERS)

    assert api.concurrently(api.delete, names) == [204] * CLUSTERS
    wait_for(
        "the cloud to start deleting",
        lambda: any(e.operation == "delete" for e in group.ledger()),
        every=0.01,
    )
    server.kill()

    server.restart().wait_ready()
    wait_for("every cluster gone", lambda: api.phases() == {}, timeout=90)
    assert [api.get(name).status_code for name in names] == [404] * CLUSTERS
    assert read_inventory(group.cloud) == {}
    assert_exactly_once(group, "create", set(inventory))
    assert_exactly_once(group, "delete", set(inventory))
    assert_metrics_match_ledger(group, "delete", server, CLUSTERS)
    assert server.provider_operations("create") == 0  # the last incarnation created nothing
    api.close()


def test_kill_9_with_requests_in_flight_loses_no_accepted_cluster(group: ProcessGroup) -> None:
    """Creates answered 201 before the kill are kept; those cut off may or may not have
    committed, but whatever the database holds converges, and nothing is created twice."""
    server = group.serve().wait_ready()
    api = Api(server.url, group.api_key())
    names = [f"inflight-{i:03d}" for i in range(100)]
    accepted: list[str] = []

    def create(name: str) -> int | None:
        try:
            response = api.create(name)
        except httpx.HTTPError:
            return None  # cut off by the kill
        if response.status_code == 201:
            accepted.append(name)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(create, name) for name in names]
        wait_for("some creates to be accepted", lambda: len(accepted) >= 10, every=0.01)
        server.kill()
        statuses = [future.result() for future in futures]
    assert set(statuses) <= {201, None}

    server.restart().wait_ready()
    wait_for(
        "every stored cluster Running",
        lambda: all(phase == "Running" for phase in api.phases().values()),
        timeout=90,
    )
    stored = set(api.phases())
    assert set(accepted) <= stored
    inventory = read_inventory(group.cloud)
    assert sorted(inventory.values()) == sorted(f"default/{name}" for name in stored)
    assert_exactly_once(group, "create", set(inventory))
    api.close()
