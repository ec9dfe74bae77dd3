"""Take PostgreSQL away from a running `kupe serve` (through a TCP proxy the test controls) and
give it back: requests answer 503 with the Kupe error body instead of hanging or failing with a
500, /readyz fails, the process stays up, and everything converges once the database returns."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from kupe.server.providers.simulated import read_inventory
from tests.conftest import TEMPLATE_DB
from tests.support.postgres import PostgresHandle
from tests.support.proxy import TcpProxy, tcp_proxy
from tests.support.server_process import Api, KupeProcess, ProcessGroup, process_group, wait_for

pytestmark = pytest.mark.slow


@dataclass
class Outage:
    proxy: TcpProxy
    group: ProcessGroup


@pytest.fixture
def outage(postgres: PostgresHandle, tmp_path: Path) -> Iterator[Outage]:
    name = f"o_{uuid.uuid4().hex[:16]}"
    url = postgres.create_database(name, template=TEMPLATE_DB)
    try:
        with tcp_proxy(postgres.host, postgres.port) as proxy:
            proxied = make_url(url).set(port=proxy.port).render_as_string(hide_password=False)
            env = {
                "KUPE_DATABASE_URL": proxied,
                # Short, so waits on a silent network end quickly in the test; the default is 10.
                "KUPE_DATABASE_TIMEOUT_SECONDS": "2",
                "KUPE_SIM_PROVISION_SECONDS": "1",
            }
            with process_group(tmp_path, env) as group:
                yield Outage(proxy, group)
    finally:
        postgres.drop_database(name)


def during_outage(server: KupeProcess, api: Api) -> list[httpx.Response]:
    """Every kind of request at once, while the database is away."""
    calls: list[Callable[[], httpx.Response]] = [
        lambda: api.get("before"),
        lambda: api.client.get(api.clusters_url()),
        lambda: api.create("during"),
        lambda: api.client.patch(api.clusters_url("before"), json={"alerts": {"a": 1}}),
        lambda: api.delete("before"),
        lambda: api.client.get(f"/api/v1/tenants/{api.tenant}"),
    ]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def assert_unavailable(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code == 503, (response.request.url, response.text)
        body = response.json()
        assert body["code"] == "SERVICE_UNAVAILABLE"
        assert body["error"] == "The database is unavailable; retry shortly"
        assert int(response.headers["retry-after"]) > 0
        assert "x-request-id" in response.headers


def assert_not_ready(server: KupeProcess) -> None:
    ready = httpx.get(f"{server.url}/readyz", timeout=30)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"].startswith("unreachable")
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    assert server.alive


def converge_after(outage: Outage, server: KupeProcess, api: Api, provisioning: list[str]) -> None:
    server.wait_ready(timeout=60)
    assert api.get("before").json()["status"]["phase"] == "Running"
    assert api.create("after").status_code == 201
    names = ["before", *provisioning, "after"]
    try:
        wait_for("every cluster Running", lambda: api.all_at("Running", names), timeout=60)
    except AssertionError as exc:
        # What was stuck, for whoever reads a failure: the phases and the server's last words.
        raise AssertionError(f"{exc}; phases {api.phases()}\n{server.log_tail(120)}") from exc
    assert sorted(api.phases()) == sorted(names)  # the create answered 503 did not happen
    wait_for(
        "wake-ups to be listened for again",
        lambda: server.metric("kupe_reconciler_wakeup_listener_up") == 1,
    )
    inventory = read_inventory(outage.group.cloud)
    assert sorted(inventory.values()) == sorted(f"default/{name}" for name in names)
    creates = Counter(e.cluster_id for e in outage.group.ledger() if e.operation == "create")
    assert set(creates) == set(inventory)
    assert set(creates.values()) == {1}
    assert server.provider_operations("create") == len(names)
    log = server.log_file.read_text()
    assert "request.unhandled_error" not in log
    assert '"status": 500' not in log


def start(outage: Outage) -> tuple[KupeProcess, Api, list[str]]:
    """A server with one Running cluster and a few still provisioning."""
    server = outage.group.serve().wait_ready()
    api = Api(server.url, outage.group.api_key())
    assert api.create("before").status_code == 201
    wait_for("the first cluster Running", lambda: api.all_at("Running", ["before"]))
    provisioning = [f"busy-{i}" for i in range(5)]
    assert api.concurrently(api.create, provisioning) == [201] * len(provisioning)
    return server, api, provisioning


def test_database_gone_answers_503_and_everything_recovers(outage: Outage) -> None:
    server, api, provisioning = start(outage)
    outage.proxy.cut()  # connections reset, new ones refused: the server is down

    assert_unavailable(during_outage(server, api))
    assert_not_ready(server)
    # Real time must pass here (a subprocess has no fake clock): long enough for leases
    # (3 s) to run out while heartbeats and claims fail, answering 503 all along.
    away_until = time.monotonic() + 8
    while time.monotonic() < away_until:
        assert_unavailable([api.get("before")])
        assert server.alive
        time.sleep(0.5)

    outage.proxy.restore()
    converge_after(outage, server, api, provisioning)
    api.close()


def test_silent_network_partition_answers_503_within_the_timeout(outage: Outage) -> None:
    """A blackhole never resets anything: only Kupe's own bounded waits (connect, statement,
    pool) turn it into an answer. The client's 30 s timeout would fail the test on a hang."""
    server, api, provisioning = start(outage)
    outage.proxy.blackhole()

    assert_unavailable(during_outage(server, api))
    assert_not_ready(server)

    outage.proxy.restore()
    converge_after(outage, server, api, provisioning)
    api.close()
