"""Several real Kupe processes sharing one PostgreSQL database and one simulated cloud:
exactly-once provisioning when a replica is killed mid-flight, wake-ups that cross processes,
and request races decided by the database rather than by any one process."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kupe.server.providers.simulated import read_inventory
from tests.conftest import TEMPLATE_DB
from tests.support.postgres import PostgresHandle
from tests.support.server_process import (
    Api,
    ProcessGroup,
    operations_by_pid,
    process_group,
    wait_for,
)

pytestmark = pytest.mark.slow
CLUSTERS = 24


@pytest.fixture
def postgres_url(postgres: PostgresHandle) -> Iterator[str]:
    name = f"r_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name, template=TEMPLATE_DB)
    postgres.drop_database(name)


@pytest.fixture
def group(tmp_path: Path, postgres_url: str) -> Iterator[ProcessGroup]:
    with process_group(tmp_path, {"KUPE_DATABASE_URL": postgres_url}) as processes:
        yield processes


@pytest.fixture
def empty_postgres_url(postgres: PostgresHandle) -> Iterator[str]:
    name = f"e_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def once_each(group: ProcessGroup, operation: str) -> set[str]:
    done = Counter(e.cluster_id for e in group.ledger() if e.operation == operation)
    assert set(done.values()) <= {1}, f"{operation} repeated: {done.most_common(3)}"
    return set(done)


def test_two_replicas_one_killed_mid_flight_provision_each_cluster_once(
    group: ProcessGroup,
) -> None:
    first, second = group.serve("first"), group.serve("second")
    first.wait_ready()
    second.wait_ready()
    key = group.api_key()
    via_first, via_second = Api(first.url, key), Api(second.url, key)
    names = [f"rep-{i:02d}" for i in range(CLUSTERS)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = pool.map(
            lambda pair: pair[0].concurrently(pair[0].create, pair[1]),
            [(via_first, names[::2]), (via_second, names[1::2])],
        )
        assert [status for half in halves for status in half] == [201] * CLUSTERS
    wait_for(
        "the cloud to start creating",
        lambda: any(e.operation == "create" for e in group.ledger()),
        every=0.01,
    )
    first.kill()

    wait_for("every cluster Running", lambda: via_second.all_at("Running", names), timeout=90)
    created = once_each(group, "create")
    assert sorted(read_inventory(group.cloud).values()) == [f"default/{n}" for n in names]
    assert len(created) == CLUSTERS
    by_pid = operations_by_pid(group.ledger(), "create")
    assert second.provider_operations("create") == by_pid.get(second.pid, 0)
    assert second.provider_operations("create") + by_pid.get(first.pids[0], 0) == CLUSTERS

    # Back to two replicas; deletes through both; the counters of the two living processes
    # add up to the number of clusters deleted.
    first.start().wait_ready()
    with ThreadPoolExecutor(max_workers=2) as pool:
        halves = pool.map(
            lambda pair: pair[0].concurrently(pair[0].delete, pair[1]),
            [(via_first, names[::2]), (via_second, names[1::2])],
        )
        assert [status for half in halves for status in half] == [204] * CLUSTERS
    wait_for("every cluster gone", lambda: via_first.phases() == {}, timeout=90)
    assert read_inventory(group.cloud) == {}
    assert once_each(group, "delete") == created
    assert first.provider_operations("delete") + second.provider_operations("delete") == CLUSTERS
    via_first.close()
    via_second.close()


def test_a_write_through_one_replica_wakes_the_reconciler_of_another(group: ProcessGroup) -> None:
    """The reconciler polls only every 5 minutes here: the cluster moves at once only because
    the API replica's commit is announced to it through the database (LISTEN/NOTIFY)."""
    api_only = group.serve("api", KUPE_RECONCILER="off")
    worker = group.reconciler("worker", KUPE_RECONCILE_POLL_SECONDS="300")
    api_only.wait_ready()
    worker.wait_ready()
    wait_for(
        "the worker to listen for wake-ups",
        lambda: worker.metric("kupe_reconciler_wakeup_listener_up") == 1,
    )
    # It looked for work at start (before it was ready) and found none; from now on only a
    # wake-up makes it look again within the next five minutes.
    api = Api(api_only.url, group.api_key())
    assert api.create("woken").status_code == 201
    wait_for(
        "the worker to pick the cluster up",
        lambda: api.phases()["woken"] != "Pending",
        timeout=30,
    )
    assert worker.provider_operations("create") == 1
    assert api_only.provider_operations("create") == 0
    api.close()


def test_request_races_across_replicas_are_decided_by_the_database(group: ProcessGroup) -> None:
    replicas = [group.serve("first"), group.serve("second")]
    for replica in replicas:
        replica.wait_ready()
    key = group.api_key()
    apis = [Api(replica.url, key) for replica in replicas]
    racers = 16

    # Creates of one name: one 201, the rest 409.
    def create(i: int) -> httpx.Response:
        return apis[i % 2].create("same-name")

    with ThreadPoolExecutor(max_workers=racers) as pool:
        created = Counter(r.status_code for r in pool.map(create, range(racers)))
    assert created == {201: 1, 409: racers - 1}

    # One Idempotency-Key: every request gets the one original response; one cluster exists.
    body = {"name": "keyed", "displayName": "Keyed", "type": "shared"}

    def keyed(i: int) -> httpx.Response:
        api = apis[i % 2]
        return api.client.post(
            api.clusters_url(), json=body, headers={"Idempotency-Key": "same-key"}
        )

    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(pool.map(keyed, range(racers)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["resourceVersion"] for r in responses}) == 1

    # PATCHes with one If-Match: one 200, the rest 412. Once the cluster is Running nothing but
    # these requests moves its resourceVersion (a resync that finds it unchanged writes none),
    # so the ETag read here is current when the racers start.
    wait_for("same-name Running", lambda: apis[0].all_at("Running", ["same-name"]))
    etag = apis[0].get("same-name").headers["etag"]

    def patch(i: int) -> httpx.Response:
        api = apis[i % 2]
        return api.client.patch(
            api.clusters_url("same-name"),
            json={"alerts": {"racer": i}},
            headers={"If-Match": etag},
        )

    with ThreadPoolExecutor(max_workers=racers) as pool:
        patched = Counter(r.status_code for r in pool.map(patch, range(racers)))
    assert patched == {200: 1, 412: racers - 1}
    assert sorted(apis[1].phases()) == ["keyed", "same-name"]
    for api in apis:
        api.close()


def test_replicas_started_together_on_an_empty_database_migrate_and_bootstrap_once(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    with process_group(tmp_path, {"KUPE_DATABASE_URL": empty_postgres_url}) as group:
        replicas = [group.serve(f"replica-{i}") for i in range(3)]
        for replica in replicas:
            replica.wait_ready()
        key = group.api_key()
        for replica in replicas:
            api = Api(replica.url, key)
            assert api.client.get(f"/api/v1/tenants/{api.tenant}").status_code == 200
            api.close()
        logs = "\n".join(replica.log_file.read_text() for replica in replicas)
        assert logs.count("Bootstrapped tenant 'default'") == 1
