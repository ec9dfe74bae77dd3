"""Watching clusters (issue 13 item 2) through a real HTTP server on loopback, on SQLite and
PostgreSQL, while `kupe.step()` drives the reconciler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kupe.sdk import AsyncClient, Expired
from kupe.server.db.repositories.event import EventRepository
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.streams import served, watching


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    settings = test_settings(tmp_path, database_url, events_heartbeat_seconds=0.3)
    async with running_kupe(settings) as app:
        yield app


@pytest.fixture
async def http(kupe: Kupe) -> AsyncIterator[httpx.AsyncClient]:
    async with served(kupe) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client


async def outbox_versions(kupe: Kupe, tenant: str) -> list[int]:
    async with kupe.runtime.db.read() as session:
        rows = await EventRepository(session).after(0, 100_000, kind="cluster")
    tenant_ids = {row.tenant_id for row in rows if row.object and tenant in row.object}
    return [row.resource_version for row in rows if row.tenant_id in tenant_ids]


def phase(line: dict[str, Any]) -> str:
    return str(line["object"]["status"]["phase"])


async def life_of_a_cluster(kupe: Kupe, creds: TenantCreds) -> None:
    """create → Running → resize → Running → delete → gone."""
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await kupe.run_for(10)
    patch = await kupe.client.patch(
        creds.url("/clusters/web"), json={"resources": {"cpu": "2"}}, headers=creds.headers
    )
    assert patch.status_code == 200, patch.text
    await kupe.run_for(10)
    assert (await kupe.client.delete(creds.url("/clusters/web"), headers=creds.headers)).is_success
    await kupe.run_for(10)
    assert await kupe.phase(creds, "web") == "<gone>"


async def test_watch_from_zero_sees_every_change_in_order(
    kupe: Kupe, http: httpx.AsyncClient
) -> None:
    creds = await kupe.tenant("acme")
    async with watching(http, creds, resourceVersion="0") as watch:
        await life_of_a_cluster(kupe, creds)
        lines = await watch.until(lambda line: line["type"] == "DELETED")
    versions = [int(line["object"]["resourceVersion"]) for line in lines]
    assert versions == sorted(set(versions)), "out of order or duplicated"
    async with kupe.runtime.db.read() as session:
        recorded = await EventRepository(session).after(0, 10_000, kind="cluster")
    assert versions == [row.resource_version for row in recorded], "a gap"
    assert lines[0]["type"] == "ADDED"
    assert phase(lines[0]) == "Pending"
    phases = [phase(line) for line in lines]
    for wanted in ("Provisioning", "Running", "Terminating"):
        assert wanted in phases
    assert phases.index("Running") < phases.index("Terminating")
    assert all(line["type"] == "MODIFIED" for line in lines[1:-1])
    assert all(line["object"]["name"] == "web" for line in lines)


async def test_watch_without_version_lists_then_streams(
    kupe: Kupe, http: httpx.AsyncClient
) -> None:
    creds = await kupe.tenant("acme")
    assert (await kupe.create_cluster(creds, "one")).status_code == 201
    await kupe.run_for(10)
    async with watching(http, creds) as watch:
        first = await watch.next()
        assert first is not None
        assert first["type"] == "ADDED"
        assert first["object"]["name"] == "one"
        assert phase(first) == "Running"
        bookmark = await watch.next()
        assert bookmark is not None
        assert bookmark["type"] == "BOOKMARK"
        listed_at = int(bookmark["object"]["resourceVersion"])
        assert listed_at >= int(first["object"]["resourceVersion"])
        assert (await kupe.create_cluster(creds, "two")).status_code == 201
        added = await watch.until(lambda line: True)
        assert added[0]["type"] == "ADDED"
        assert added[0]["object"]["name"] == "two"
        assert int(added[0]["object"]["resourceVersion"]) > listed_at
        # Idle: heartbeats are BOOKMARKs from which a watch may resume.
        idle = await watch.next(wait=5)
        assert idle is not None
        assert idle["type"] == "BOOKMARK"
        assert int(idle["object"]["resourceVersion"]) >= int(added[0]["object"]["resourceVersion"])


async def test_one_cluster_and_tenant_isolation(kupe: Kupe, http: httpx.AsyncClient) -> None:
    acme = await kupe.tenant("acme")
    rival = await kupe.tenant("rival")
    for creds in (acme, rival):
        assert (await kupe.create_cluster(creds, "web")).status_code == 201
    assert (await kupe.create_cluster(acme, "other")).status_code == 201
    # Another tenant's cluster is 404 as elsewhere; so is one that does not exist.
    for creds, path in ((rival, "/clusters/other"), (acme, "/clusters/nope")):
        response = await http.get(creds.url(path), params={"watch": "true"}, headers=creds.headers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "NOT_FOUND"
    # Acme's key cannot watch rival's tenant at all.
    response = await http.get(
        rival.url("/clusters"), params={"watch": "true"}, headers=acme.headers
    )
    assert response.status_code in (403, 404), response.text
    async with watching(http, acme, "/clusters/web") as watch:
        listed = await watch.next()
        assert listed is not None
        assert listed["object"]["name"] == "web"
        await kupe.run_for(10)
        lines = await watch.until(lambda line: phase(line) == "Running")
    assert {line["object"]["name"] for line in lines} == {"web"}
    async with kupe.runtime.db.read() as session:
        rows = await EventRepository(session).after(0, 10_000, kind="cluster")
    acme_versions = {
        r.resource_version for r in rows if r.name == "web" and r.tenant_id != "" and r.actor
    }
    assert {int(line["object"]["resourceVersion"]) for line in lines} <= acme_versions
    # Rival's stream carries none of acme's clusters.
    async with watching(http, rival, resourceVersion="0") as watch:
        lines = await watch.until(lambda line: phase(line) == "Running")
    assert {line["object"]["name"] for line in lines} == {"web"}
    assert len({line["object"]["createdAt"] for line in lines}) == 1


async def test_resource_version_checks(kupe: Kupe, http: httpx.AsyncClient) -> None:
    creds = await kupe.tenant("acme")
    for bad in ("-1", "abc", "1e3", "9" * 30):
        response = await http.get(
            creds.url("/clusters"),
            params={"watch": "true", "resourceVersion": bad},
            headers=creds.headers,
        )
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["field"] == "resourceVersion"
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await kupe.run_for(10)
    kupe.clock.advance(31 * 86400)
    assert await kupe.runtime.event_retention.prune_expired() > 0
    response = await http.get(
        creds.url("/clusters"),
        params={"watch": "true", "resourceVersion": "1"},
        headers=creds.headers,
    )
    assert response.status_code == 410, response.text
    assert response.json()["code"] == "EXPIRED"
    # From the list's resourceVersion a watch works again.
    async with watching(http, creds) as watch:
        first = await watch.next()
        assert first is not None
        assert first["type"] == "ADDED"


async def test_server_sent_events(kupe: Kupe, http: httpx.AsyncClient) -> None:
    creds = await kupe.tenant("acme")
    headers = {**creds.headers, "Accept": "text/event-stream"}
    request = http.build_request(
        "GET",
        creds.url("/clusters"),
        params={"watch": "true", "resourceVersion": "0"},
        headers=headers,
    )
    response = await http.send(request, stream=True)
    try:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert (await kupe.create_cluster(creds, "web")).status_code == 201
        lines = response.aiter_lines()
        block: list[str] = []
        async for line in lines:
            if line == "" and block:
                break
            if line and not line.startswith(":"):
                block.append(line)
        fields = dict(line.split(": ", 1) for line in block)
        assert fields["event"] == "ADDED"
        assert '"name":"web"' in fields["data"]
        assert int(fields["id"]) > 0
    finally:
        await response.aclose()


async def test_async_sdk_watches_and_waits(kupe: Kupe, http: httpx.AsyncClient) -> None:
    creds = await kupe.tenant("acme")
    async with AsyncClient(str(http.base_url), api_key=creds.key, tenant="acme") as client:
        assert (await kupe.create_cluster(creds, "web")).status_code == 201
        waiting = asyncio.create_task(client.clusters.wait("web", timeout=30))
        stream = client.clusters.watch()
        first = await anext(stream)
        assert first.type == "ADDED"
        await kupe.run_for(10)
        running = await asyncio.wait_for(waiting, 10)
        assert running.status.phase == "Running"
        seen = [first]
        while seen[-1].cluster is None or seen[-1].cluster.status.phase != "Running":
            seen.append(await anext(stream))
        await stream.aclose()  # type: ignore[attr-defined]
        timeline = await client.clusters.events("web")
        assert [item.reason for item in timeline.items] == [
            "Created",
            "ProvisioningStarted",
            "Running",
        ]
        kupe.clock.advance(31 * 86400)
        await kupe.runtime.event_retention.prune_expired()
        with pytest.raises(Expired):
            await anext(client.clusters.watch(resource_version="1"))


async def test_a_long_replay_is_read_from_the_table_page_by_page(
    kupe: Kupe, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep almost nothing in memory and read small pages: the replay comes from the table.
    monkeypatch.setattr("kupe.server.services.event_hub.RECENT_EVENTS", 2)
    monkeypatch.setattr("kupe.server.services.watch.CATCH_UP_PAGE", 3)
    creds = await kupe.tenant("acme", plan="enterprise")
    async with watching(http, creds) as warm:  # the hub reads (and forgets) as they commit
        for index in range(8):
            assert (await kupe.create_cluster(creds, f"c{index}")).status_code == 201
        await kupe.run_for(3)
        await warm.until(lambda line: line["object"]["name"] == "c7" and phase(line) != "Pending")
    async with kupe.runtime.db.read() as session:
        recorded = await EventRepository(session).after(0, 10_000, kind="cluster")
    async with watching(http, creds, resourceVersion="0") as watch:
        last = recorded[-1].resource_version
        lines = await watch.until(lambda line: int(line["object"]["resourceVersion"]) >= last)
    assert [int(line["object"]["resourceVersion"]) for line in lines] == [
        row.resource_version for row in recorded
    ]
