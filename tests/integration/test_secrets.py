"""Managed secrets (API §7) against a real OpenBao, on SQLite and PostgreSQL: definitions in
Kupe, values read from the tenant's own KV v2 mount, copies in the simulated clusters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from kupe.schemas.secret import SyncTarget
from kupe.sdk import AsyncClient, NotFound, PreconditionFailed
from kupe.server.providers.base import SecretCopy
from kupe.server.providers.simulated import SimulatedProvider, read_ledger
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.openbao import OpenBaoServer

RESYNC = 60


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path, openbao: OpenBaoServer) -> AsyncIterator[Kupe]:
    openbao.ensure_running()
    settings = test_settings(
        tmp_path, database_url, secret_resync_seconds=RESYNC, **openbao.kupe_credential()
    )
    async with running_kupe(settings) as app:
        yield app
    openbao.ensure_running()


async def tenant(kupe: Kupe) -> TenantCreds:
    """A tenant of its own: the OpenBao server (and its mounts) outlives each test."""
    return await kupe.tenant(f"t{uuid.uuid4().hex[:10]}")


async def put(kupe: Kupe, bao: OpenBaoServer, creds: TenantCreds, path: str, **data: Any) -> int:
    """Write a value into the tenant's mount (Kupe creates the mount); its KV version."""
    assert kupe.runtime.vault is not None
    await kupe.runtime.vault.ensure_tenant(creds.name)
    return bao.kv_put(f"kupe-{creds.name}", path, data)


async def running(kupe: Kupe, creds: TenantCreds, *names: str) -> dict[str, str]:
    """Running clusters by name -> id."""
    for name in names:
        assert (await kupe.create_cluster(creds, name)).status_code == 201
    await kupe.run_for(9)
    return {name: await cluster_id(kupe, name, creds) for name in names}


async def cluster_id(kupe: Kupe, name: str, creds: TenantCreds) -> str:
    async with kupe.runtime.db.read() as session:
        found = await session.scalar(
            text(
                "SELECT c.id FROM clusters c JOIN tenants t ON t.id = c.tenant_id "
                "WHERE c.name = :n AND t.name = :t AND c.removed_at IS NULL"
            ),
            {"n": name, "t": creds.name},
        )
    assert found is not None
    return str(found)


def cloud(kupe: Kupe) -> SimulatedProvider:
    provider = kupe.runtime.provider
    assert isinstance(provider, SimulatedProvider)
    return provider


async def copy_of(kupe: Kupe, cluster: str, namespace: str, name: str) -> SecretCopy | None:
    return await cloud(kupe).read_secret(cluster, namespace, name)


def writes(kupe: Kupe) -> int:
    return sum(e.operation == "secret-write" for e in read_ledger(cloud(kupe).state_file))


async def create(kupe: Kupe, creds: TenantCreds, **body: Any) -> httpx.Response:
    return await kupe.client.post(creds.url("/secrets"), json=body, headers=creds.headers)


async def get(kupe: Kupe, creds: TenantCreds, name: str) -> dict[str, Any]:
    response = await kupe.client.get(creds.url(f"/secrets/{name}"), headers=creds.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch(
    kupe: Kupe, creds: TenantCreds, name: str, sync: list[dict[str, str]], etag: str | None = None
) -> httpx.Response:
    headers = {**creds.headers, **({"If-Match": etag} if etag else {})}
    return await kupe.client.patch(
        creds.url(f"/secrets/{name}"), json={"sync": sync}, headers=headers
    )


def target(cluster: str, namespace: str = "apps", **extra: str) -> dict[str, str]:
    return {"cluster": cluster, "namespace": namespace, **extra}


async def test_a_secret_reaches_every_target_then_is_active(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web", "jobs")
    version = await put(kupe, openbao, creds, "db/main", password="s3cret-1", user="app")

    created = await create(
        kupe,
        creds,
        name="db",
        secretPath="db/main",
        sync=[target("web"), target("jobs", "batch", secretName="db-creds")],
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["ETag"] == f'"{body["resourceVersion"]}"'
    assert created.headers["Location"].endswith(f"/tenants/{creds.name}/secrets/db")
    assert body["sync"] == [target("web"), target("jobs", "batch", secretName="db-creds")]
    assert body["status"]["phase"] == "Pending"
    assert "s3cret-1" not in created.text

    await kupe.step()
    body = await get(kupe, creds, "db")
    assert body["status"]["phase"] == "Active"
    statuses = body["status"]["syncStatuses"]
    assert [(s["cluster"], s["namespace"], s["secretName"], s["phase"]) for s in statuses] == [
        ("web", "apps", "db", "Synced"),
        ("jobs", "batch", "db-creds", "Synced"),
    ]
    assert {s["sourceVersion"] for s in statuses} == {version}
    assert all(s["lastSyncedAt"].endswith("Z") for s in statuses)
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"

    for cluster, namespace, name in (("web", "apps", "db"), ("jobs", "batch", "db-creds")):
        held = await copy_of(kupe, ids[cluster], namespace, name)
        assert held is not None
        assert held.data == {"password": b"s3cret-1", "user": b"app"}
        assert held.labels["app.kubernetes.io/managed-by"] == "kupe"
        assert held.annotations["kupe.io/source-version"] == str(version)

    # Readonly members read; only admins write.
    reader = {"Authorization": f"Bearer {await kupe.api_key(creds.name, 'readonly')}"}
    listed = await kupe.client.get(creds.url("/secrets"), headers=reader)
    assert [item["name"] for item in listed.json()["items"]] == ["db"]
    refused = await kupe.client.post(
        creds.url("/secrets"), json={"name": "other", "secretPath": "x"}, headers=reader
    )
    assert refused.status_code == 403
    assert (await kupe.client.delete(creds.url("/secrets/db"), headers=reader)).status_code == 403


async def test_a_new_version_reaches_the_targets_within_the_resync_and_nothing_else_is_rewritten(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web", "jobs")
    await put(kupe, openbao, creds, "api", token="v1")
    assert (
        await create(
            kupe, creds, name="api", secretPath="api", sync=[target("web"), target("jobs")]
        )
    ).status_code == 201
    await kupe.step()
    assert (await get(kupe, creds, "api"))["status"]["phase"] == "Active"
    before = writes(kupe)
    assert before == 2

    # Looking again without a new version writes nothing.
    await kupe.step(RESYNC)
    await kupe.step(RESYNC)
    assert writes(kupe) == before

    newer = await put(kupe, openbao, creds, "api", token="v2", extra="x")
    await kupe.step(RESYNC)
    body = await get(kupe, creds, "api")
    assert body["status"]["phase"] == "Active"
    assert {s["sourceVersion"] for s in body["status"]["syncStatuses"]} == {newer}
    for cluster in ids.values():
        held = await copy_of(kupe, cluster, "apps", "api")
        assert held is not None
        assert held.data == {"token": b"v2", "extra": b"x"}
    assert writes(kupe) == before + 2
    await kupe.step(RESYNC)
    assert writes(kupe) == before + 2


async def test_patch_replaces_the_targets_and_removes_copies_no_longer_targeted(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web", "jobs")
    await put(kupe, openbao, creds, "cfg", k="v")
    never_set = await create(kupe, creds, name="idle", secretPath="cfg")
    assert "sync" not in never_set.json()
    created = await create(
        kupe, creds, name="cfg", secretPath="cfg", sync=[target("web"), target("jobs")]
    )
    await kupe.step()
    assert await copy_of(kupe, ids["jobs"], "apps", "cfg") is not None
    assert "sync" not in await get(kupe, creds, "idle")

    # A stale If-Match changes nothing; the current one replaces every target.
    stale = created.headers["ETag"]
    current = (await kupe.client.get(creds.url("/secrets/cfg"), headers=creds.headers)).headers[
        "ETag"
    ]
    assert current != stale
    assert (await patch(kupe, creds, "cfg", [target("web")], stale)).status_code == 412
    fewer = await patch(kupe, creds, "cfg", [target("web")], current)
    assert fewer.status_code == 200, fewer.text
    assert fewer.json()["sync"] == [target("web")]
    assert fewer.json()["status"]["phase"] == "Pending"
    await kupe.step()
    assert await copy_of(kupe, ids["jobs"], "apps", "cfg") is None
    assert await copy_of(kupe, ids["web"], "apps", "cfg") is not None
    body = await get(kupe, creds, "cfg")
    assert [s["cluster"] for s in body["status"]["syncStatuses"]] == ["web"]

    # [] stops syncing: the copy goes and the definition says [] (not absent).
    cleared = await patch(kupe, creds, "cfg", [])
    assert cleared.status_code == 200
    await kupe.step()
    body = await get(kupe, creds, "cfg")
    assert body["sync"] == []
    assert body["status"]["syncStatuses"] == []
    assert await copy_of(kupe, ids["web"], "apps", "cfg") is None

    # secretPath is immutable; sending it back unchanged is fine.
    moved = await kupe.client.patch(
        creds.url("/secrets/cfg"), json={"sync": [], "secretPath": "other"}, headers=creds.headers
    )
    assert moved.status_code == 400
    assert moved.json()["field"] == "secretPath"
    same = await kupe.client.patch(
        creds.url("/secrets/cfg"), json={"sync": [], "secretPath": "cfg"}, headers=creds.headers
    )
    assert same.status_code == 200


async def test_delete_removes_the_copies_then_answers_404_and_leaves_the_value(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web")
    await put(kupe, openbao, creds, "gone", k="kept-in-bao")
    assert (
        await create(kupe, creds, name="gone", secretPath="gone", sync=[target("web")])
    ).status_code == 201
    await kupe.step()
    assert await copy_of(kupe, ids["web"], "apps", "gone") is not None

    deleted = await kupe.client.delete(creds.url("/secrets/gone"), headers=creds.headers)
    assert deleted.status_code == 204
    assert (await get(kupe, creds, "gone"))["status"]["phase"] == "Deleting"
    again = await create(kupe, creds, name="gone", secretPath="gone")
    assert again.status_code == 409
    await kupe.step()
    missing = await kupe.client.get(creds.url("/secrets/gone"), headers=creds.headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"
    assert await copy_of(kupe, ids["web"], "apps", "gone") is None
    kept = openbao.root("GET", f"kupe-{creds.name}/data/gone").json()["data"]["data"]
    assert kept == {"k": "kept-in-bao"}
    # The name is free again.
    assert (await create(kupe, creds, name="gone", secretPath="gone")).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "sx", "secretPath": "../kupe-other/db"}, "secretPath"),
        ({"name": "sx", "secretPath": "/db"}, "secretPath"),
        ({"name": "sx", "secretPath": "a//b"}, "secretPath"),
        ({"name": "sx", "secretPath": "a/./b"}, "secretPath"),
        ({"name": "sx", "secretPath": ""}, "secretPath"),
        ({"name": "sx", "secretPath": "db", "sync": [target("nope")]}, "sync.0.cluster"),
        ({"name": "sx", "secretPath": "db", "sync": [target("web", "Bad_NS")]}, "sync.0.namespace"),
        (
            {"name": "sx", "secretPath": "db", "sync": [target("web", secretName="-x")]},
            "sync.0.secretName",
        ),
        ({"name": "sx", "secretPath": "db", "sync": [target("web"), target("web")]}, "sync.1"),
        ({"name": "Not A Name", "secretPath": "db"}, "name"),
    ],
)
async def test_bad_definitions_are_refused_and_change_nothing(
    kupe: Kupe, body: dict[str, Any], field: str
) -> None:
    creds = await tenant(kupe)
    await running(kupe, creds, "web")
    refused = await create(kupe, creds, **body)
    assert refused.status_code == 400, refused.text
    error = refused.json()
    assert error["code"] == "VALIDATION_FAILED"
    assert error["field"] == field, error
    listed = await kupe.client.get(creds.url("/secrets"), headers=creds.headers)
    assert listed.json()["items"] == []


async def test_a_tenant_never_reaches_another_tenants_values_or_clusters(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    owner, other = await tenant(kupe), await tenant(kupe)
    await running(kupe, owner, "web")
    theirs = await running(kupe, other, "app")
    await put(kupe, openbao, owner, "db", password="owner-only")

    # The other tenant's cluster is not a target it can name, nor the owner's secret one it sees.
    refused = await create(kupe, other, name="steal", secretPath="db", sync=[target("web")])
    assert refused.status_code == 400
    assert (await create(kupe, owner, name="db", secretPath="db")).status_code == 201
    hidden = await kupe.client.get(other.url("/secrets/db"), headers=other.headers)
    assert hidden.status_code == 404
    across = await kupe.client.get(owner.url("/secrets/db"), headers=other.headers)
    assert across.status_code in (401, 403)

    # The same path in its own definition reads its own (empty) mount, never the owner's.
    await put(kupe, openbao, other, "unrelated", k="v")
    assert (
        await create(kupe, other, name="db", secretPath="db", sync=[target("app")])
    ).status_code == 201
    await kupe.step()
    body = await get(kupe, other, "db")
    assert body["status"]["phase"] == "Degraded"
    assert body["status"]["syncStatuses"][0]["phase"] == "Error"
    assert "owner-only" not in str(body)
    assert await copy_of(kupe, theirs["app"], "apps", "db") is None


async def test_a_target_waits_for_its_cluster_and_is_dropped_when_the_cluster_goes(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web")
    await put(kupe, openbao, creds, "cfg", k="v")
    assert (await kupe.create_cluster(creds, "late")).status_code == 201
    assert (
        await create(
            kupe, creds, name="cfg", secretPath="cfg", sync=[target("web"), target("late")]
        )
    ).status_code == 201
    await kupe.step()
    body = await get(kupe, creds, "cfg")
    assert body["status"]["phase"] == "Pending"
    assert [s["phase"] for s in body["status"]["syncStatuses"]] == ["Synced", "Pending"]

    await kupe.run_for(9)
    body = await get(kupe, creds, "cfg")
    assert body["status"]["phase"] == "Active"
    late = await cluster_id(kupe, "late", creds)
    assert await copy_of(kupe, late, "apps", "cfg") is not None

    deleted = await kupe.client.delete(creds.url("/clusters/late"), headers=creds.headers)
    assert deleted.status_code == 204
    await kupe.run_for(RESYNC + 5, tick=5)
    assert await kupe.phase(creds, "late") == "<gone>"
    body = await get(kupe, creds, "cfg")
    assert [s["cluster"] for s in body["status"]["syncStatuses"]] == ["web"]
    dropped = next(c for c in body["status"]["conditions"] if c["type"] == "TargetsDropped")
    assert (dropped["status"], dropped["reason"]) == ("True", "ClusterDeleted")
    assert "late" in dropped["message"]
    assert await copy_of(kupe, ids["web"], "apps", "cfg") is not None


async def test_a_secret_kupe_does_not_manage_is_never_overwritten_or_removed(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web")
    foreign = SecretCopy("apps", "db", {"k": b"someone-elses"}, {"team": "x"})
    await cloud(kupe).put_unmanaged_secret(ids["web"], foreign)
    await put(kupe, openbao, creds, "db", k="kupe")
    assert (
        await create(kupe, creds, name="db", secretPath="db", sync=[target("web")])
    ).status_code == 201
    await kupe.step()
    body = await get(kupe, creds, "db")
    assert body["status"]["phase"] == "Degraded"
    status = body["status"]["syncStatuses"][0]
    assert status["phase"] == "Error"
    assert "does not manage" in status["message"]

    assert (await kupe.client.delete(creds.url("/secrets/db"), headers=creds.headers)).status_code
    await kupe.step()
    held = await copy_of(kupe, ids["web"], "apps", "db")
    assert held is not None
    assert held.data == {"k": b"someone-elses"}


async def test_an_openbao_outage_keeps_the_last_status_and_the_sync_recovers(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web", "jobs")
    await put(kupe, openbao, creds, "cfg", k="v1")
    assert (
        await create(kupe, creds, name="cfg", secretPath="cfg", sync=[target("web")])
    ).status_code == 201
    await kupe.step()
    assert (await get(kupe, creds, "cfg"))["status"]["phase"] == "Active"

    openbao.stop()
    try:
        assert (await patch(kupe, creds, "cfg", [target("web"), target("jobs")])).status_code == 200
        before = (await get(kupe, creds, "cfg"))["status"]
        assert before["phase"] == "Pending"  # not Active until the new target holds the value
        assert [s["phase"] for s in before["syncStatuses"]] == ["Synced", "Pending"]
        for _ in range(3):
            await kupe.step(5)
        during = await get(kupe, creds, "cfg")
        assert during["status"] == before  # the last known status, not an error from the outage
        assert await copy_of(kupe, ids["jobs"], "apps", "cfg") is None
    finally:
        openbao.start()
    await kupe.run_for(10)
    body = await get(kupe, creds, "cfg")
    assert body["status"]["phase"] == "Active"
    assert [s["phase"] for s in body["status"]["syncStatuses"]] == ["Synced", "Synced"]
    assert await copy_of(kupe, ids["jobs"], "apps", "cfg") is not None


async def test_the_async_sdk_manages_secrets_and_waits_for_active(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    ids = await running(kupe, creds, "web")
    await put(kupe, openbao, creds, "db", password="pw")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=kupe.app))

    async def sleep(seconds: float) -> None:
        await kupe.step(seconds)

    async with (
        http,
        AsyncClient(
            "http://kupe.test",
            api_key=creds.key,
            tenant=creds.name,
            http_client=http,
            sleep=sleep,
            monotonic=lambda: kupe.clock.now().timestamp(),
        ) as client,
    ):
        created = await client.secrets.create(
            "db", secret_path="db", sync=[SyncTarget(cluster="web", namespace="apps")]
        )
        assert created.sync is not None
        assert created.status.phase == "Pending"
        active = await client.secrets.wait("db", timeout=30)
        assert active.status.sync_statuses[0].source_version == 1
        assert [s.name for s in await client.secrets.list()] == ["db"]
        with pytest.raises(PreconditionFailed):
            await client.secrets.update("db", sync=[], if_match=created.resource_version)
        cleared = await client.secrets.update("db", sync=[])
        assert cleared.sync == []
        assert (await client.secrets.wait("db", timeout=30)).status.sync_statuses == []
        assert await copy_of(kupe, ids["web"], "apps", "db") is None
        await client.secrets.delete("db")
        await client.secrets.wait_deleted("db", timeout=30)
        with pytest.raises(NotFound):
            await client.secrets.get("db")


async def test_a_retried_create_with_its_idempotency_key_makes_one_secret(
    kupe: Kupe, openbao: OpenBaoServer
) -> None:
    creds = await tenant(kupe)
    retry = {**creds.headers, "Idempotency-Key": "db-1"}
    await running(kupe, creds, "web")
    body = {"name": "db", "secretPath": "db/main", "sync": [target("web")]}
    first = await kupe.client.post(creds.url("/secrets"), json=body, headers=retry)
    second = await kupe.client.post(creds.url("/secrets"), json=body, headers=retry)
    assert first.status_code == second.status_code == 201, second.text
    assert first.json() == second.json()
    other = await kupe.client.post(
        creds.url("/secrets"), json={**body, "name": "db2"}, headers=retry
    )
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await kupe.client.get(creds.url("/secrets"), headers=creds.headers)
    assert [s["name"] for s in listed.json()["items"]] == ["db"]
