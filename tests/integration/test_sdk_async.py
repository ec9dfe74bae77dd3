"""AsyncClient against the real app in-process (SQLite and PostgreSQL), reconciler stepped by a
fake clock: the client's own sleep moves time, so wait() runs the real lifecycle without waiting."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from kupe.schemas.cluster import Cluster, ClusterUpdate, ResourcesInput
from kupe.schemas.tenant import Tenant, TenantUpdate
from kupe.sdk import (
    AsyncClient,
    ClusterFailed,
    Conflict,
    Forbidden,
    NotFound,
    PlanLimitExceeded,
    PreconditionFailed,
    RetryPolicy,
    ServiceUnavailable,
    Unauthorized,
    WaitTimeout,
)
from tests.support.harness import Kupe, running_kupe, test_settings


class Recorder:
    """Every response the client saw, to check what went over the wire."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    async def __call__(self, response: httpx.Response) -> None:
        self.responses.append(response)

    def statuses(self, method: str = "GET") -> list[int]:
        return [r.status_code for r in self.responses if r.request.method == method]


@asynccontextmanager
async def sdk(
    kupe: Kupe,
    key: str,
    tenant: str,
    recorder: Recorder | None = None,
    on_request: Callable[[httpx.Request], Awaitable[None]] | None = None,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[AsyncClient]:
    """An AsyncClient on the app in-process whose sleeps advance the fake clock and reconcile."""
    hooks: dict[str, list[Callable[..., Awaitable[None]]]] = {}
    if recorder:
        hooks["response"] = [recorder]
    if on_request:
        hooks["request"] = [on_request]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=kupe.app), event_hooks=hooks)

    async def sleep(seconds: float) -> None:
        await kupe.step(seconds)

    async with (
        http,
        AsyncClient(
            "http://kupe.test",
            api_key=key,
            tenant=tenant,
            http_client=http,
            sleep=sleep,
            retry=retry,
            monotonic=lambda: kupe.clock.now().timestamp(),
        ) as client,
    ):
        yield client


async def test_cluster_lifecycle(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    recorder = Recorder()
    async with sdk(kupe, acme.key, acme.name, recorder) as client:
        created = await client.clusters.create(
            "production",
            display_name="Production",
            type="shared",
            version="1.31",
            resources={"cpu": "2", "memory": "8Gi", "storage": "50Gi"},
            alerts={"cpuHigh": {"threshold": 90}},
        )
        assert isinstance(created, Cluster)
        assert created.status.phase == "Pending"
        assert created.alerts == {"cpuHigh": {"threshold": 90}}

        seen: list[str] = []
        running = await client.clusters.wait(
            "production",
            timeout=120,
            poll_interval=1,
            on_change=lambda c: seen.append(c.status.phase),
        )
        assert running.status.phase == "Running"
        assert running.status.kubernetes_version is not None
        assert running.status.kubernetes_version.startswith("v1.31.")
        assert seen[0] == "Pending"
        assert seen[-1] == "Running"
        # Unchanged polls were answered 304, asked with If-None-Match.
        assert 304 in recorder.statuses()
        polls = [r.request for r in recorder.responses if r.status_code == 304]
        assert all(p.headers["if-none-match"].startswith('"') for p in polls)

        details = await client.clusters.connection_details("production")
        assert details.endpoint == running.status.endpoint
        assert base64.b64decode(details.certificate_authority).startswith(b"-----BEGIN CERTIFICATE")
        kubeconfig = await client.clusters.kubeconfig("production")
        assert kubeconfig["current-context"] == "kupe-acme-production"

        updated = await client.clusters.update(
            "production", version="1.32", resources=ResourcesInput(cpu="3")
        )
        assert updated.generation == 2
        assert updated.resources.cpu == "3"
        assert updated.resources.memory == "8Gi"
        phases: list[str] = []
        upgraded = await client.clusters.wait(
            "production",
            timeout=120,
            poll_interval=1,
            on_change=lambda c: phases.append(c.status.phase),
        )
        assert "Upgrading" in phases
        assert upgraded.status.observed_generation == 2
        assert upgraded.status.kubernetes_version is not None
        assert upgraded.status.kubernetes_version.startswith("v1.32.")

        cleared = await client.clusters.update("production", clear_alerts=True)
        assert cleared.alerts is None

        await client.clusters.delete("production")
        assert (await client.clusters.get("production")).status.phase == "Terminating"
        await client.clusters.wait_deleted("production", timeout=120, poll_interval=1)
        with pytest.raises(NotFound) as caught:
            await client.clusters.get("production")
        assert caught.value.request_id
        assert await client.clusters.list() == []


async def test_read_modify_write_rereads_after_412(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    raced = False

    async def another_writer(request: httpx.Request) -> None:
        # Just before our first PATCH lands, someone else changes the cluster.
        nonlocal raced
        if request.method == "PATCH" and not raced:
            raced = True
            other = await kupe.client.patch(
                acme.url("/clusters/web"),
                json={"resources": {"storage": "30Gi"}},
                headers=acme.headers,
            )
            assert other.status_code == 200, other.text

    async with sdk(kupe, acme.key, acme.name, on_request=another_writer) as client:
        original = await client.clusters.create("web", display_name="Web", type="shared")
        reads: list[str] = []

        def cpu(cluster: Cluster) -> int:
            assert cluster.status.allocated_resources is not None
            return int(cluster.status.allocated_resources.cpu)

        def add_a_core(cluster: Cluster) -> ClusterUpdate:
            reads.append(cluster.resource_version)
            return ClusterUpdate(resources=ResourcesInput(cpu=str(cpu(cluster) + 1)))

        result = await client.clusters.modify("web", add_a_core)
        assert len(reads) == 2
        assert reads[0] != reads[1]
        assert cpu(result) == cpu(original) + 1
        assert result.resources is not None
        assert (result.resources.cpu, result.resources.storage) == (str(cpu(original) + 1), "30Gi")
        with pytest.raises(PreconditionFailed):
            await client.clusters.update("web", version="1.33", if_match=original.resource_version)


async def test_idempotent_create_replays_and_rejects_a_different_body(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    async with sdk(kupe, acme.key, acme.name) as client:
        first = await client.clusters.create(
            "api", display_name="API", type="shared", idempotency_key="k-1"
        )
        again = await client.clusters.create(
            "api", display_name="API", type="shared", idempotency_key="k-1"
        )
        assert again.resource_version == first.resource_version
        with pytest.raises(Conflict) as caught:
            await client.clusters.create(
                "api", display_name="Other", type="shared", idempotency_key="k-1"
            )
        assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
        with pytest.raises(Conflict) as exists:
            await client.clusters.create("api", display_name="API", type="shared")
        assert exists.value.status == 409


async def test_errors_map_to_the_tree(kupe: Kupe) -> None:
    small = await kupe.tenant("small", plan="starter")
    readonly = await kupe.api_key("small", "readonly")
    async with sdk(kupe, small.key, small.name) as client:
        await client.clusters.create("one", display_name="One", type="shared")
        await client.clusters.create("two", display_name="Two", type="shared")
        with pytest.raises(PlanLimitExceeded) as limit:
            await client.clusters.create("three", display_name="Three", type="shared")
        assert limit.value.code == "PLAN_LIMIT_EXCEEDED"
        with pytest.raises(Forbidden) as dedicated:
            await client.clusters.create("four", display_name="Four", type="dedicated")
        assert dedicated.value.code == "CLUSTER_DEDICATED_UNSUPPORTED"
        # 503 Not ready carries Retry-After: the client waits it out (here, in fake time).
        details = await client.clusters.connection_details("one")
        assert details.endpoint.startswith("https://one.small.")
    other = await kupe.tenant("other", plan="pro")
    async with sdk(kupe, other.key, other.name, retry=RetryPolicy(max_retries=0)) as client:
        await client.clusters.create("zz", display_name="ZZ", type="shared")
        with pytest.raises(ServiceUnavailable) as not_ready:
            await client.clusters.connection_details("zz")
        assert not_ready.value.retry_after is not None
        assert not_ready.value.request_id
    async with sdk(kupe, readonly, small.name) as client:
        assert [c.name for c in await client.clusters.list()] == ["one", "two"]
        with pytest.raises(Forbidden):
            await client.clusters.delete("one")
    async with sdk(kupe, "kupe_notakey", small.name) as client:
        with pytest.raises(Unauthorized):
            await client.clusters.list()


async def test_list_follows_continue_tokens(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="business")
    recorder = Recorder()
    async with sdk(kupe, acme.key, acme.name, recorder) as client:
        for name in ("c-a", "c-b", "c-c"):
            await client.clusters.create(name, display_name=name, type="shared")
        recorder.responses.clear()
        clusters = await client.clusters.list(page_size=2)
        assert [c.name for c in clusters] == ["c-a", "c-b", "c-c"]
        assert len(recorder.responses) == 2


async def test_wait_times_out(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    async with sdk(kupe, acme.key, acme.name) as client:
        await client.clusters.create("slow", display_name="Slow", type="shared")
        with pytest.raises(WaitTimeout) as caught:
            await client.clusters.wait("slow", timeout=3, poll_interval=1)
        assert caught.value.cluster is not None
        assert caught.value.cluster.status.phase in ("Pending", "Provisioning")
        assert "did not become Running within 3s" in caught.value.message


async def test_wait_raises_cluster_failed_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    settings = test_settings(tmp_path, database_url, sim_fail_pattern="^doomed")
    async with running_kupe(settings) as kupe:
        acme = await kupe.tenant("acme", plan="pro")
        async with sdk(kupe, acme.key, acme.name) as client:
            await client.clusters.create("doomed-1", display_name="Doomed", type="shared")
            with pytest.raises(ClusterFailed) as caught:
                await client.clusters.wait("doomed-1", timeout=120, poll_interval=1)
            assert "simulated permanent failure" in caught.value.reason
            assert caught.value.cluster is not None
            assert caught.value.cluster.status.phase == "Failed"


async def test_tenant_members_and_api_keys(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    async with sdk(kupe, acme.key, acme.name) as client:
        tenant = await client.tenant.get()
        assert isinstance(tenant, Tenant)
        assert tenant.plan == "pro"
        changed = await client.tenant.update(enforce_metrics_limit=not tenant.enforce_metrics_limit)
        assert changed.enforce_metrics_limit is not tenant.enforce_metrics_limit
        with pytest.raises(PreconditionFailed):
            await client.tenant.update(plan="business", if_match=tenant.resource_version)
        moved = await client.tenant.modify(
            lambda t: TenantUpdate(plan="business") if t.plan != "business" else None
        )
        assert moved.plan == "business"

        added = await client.members.add("Bob+ops@Example.com", role="readonly")
        assert added.email == "bob+ops@example.com"
        promoted = await client.members.update("bob+ops@example.com", role="admin")
        assert promoted.role == "admin"
        emails = {m.email for m in await client.members.list()}
        assert emails == {"admin@acme.example.com", "bob+ops@example.com"}
        await client.members.remove("bob+ops@example.com")
        with pytest.raises(Conflict) as last:
            await client.members.update("admin@acme.example.com", role="readonly")
        assert last.value.code == "LAST_ADMIN"

        created = await client.apikeys.create(display_name="ci", role="readonly")
        assert created.key.startswith("kupe_")
        assert created.id in {k.id for k in await client.apikeys.list()}
    async with sdk(kupe, created.key, acme.name) as ci:
        assert (await ci.tenant.get()).name == "acme"
    async with sdk(kupe, acme.key, acme.name) as client:
        await client.apikeys.delete(created.id)
    async with sdk(kupe, created.key, acme.name) as ci:
        with pytest.raises(Unauthorized):
            await ci.tenant.get()
