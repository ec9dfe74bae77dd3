"""The outbox (issue 13 item 1): one event per change, written in the change's transaction, for
every kind, including what the reconciler writes; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from kupe.server.db.models import Cluster, Event
from kupe.server.db.repositories.event import EventRepository
from tests.support.harness import Kupe


async def events(kupe: Kupe, kind: str | None = None) -> list[Event]:
    async with kupe.runtime.db.read() as session:
        return await EventRepository(session).after(0, 10_000, kind=kind)


async def test_cluster_life_is_recorded_with_reasons(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme")
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await kupe.run_for(10)
    assert await kupe.phase(creds, "web") == "Running"
    patch = {"resources": {"cpu": "2"}}
    response = await kupe.client.patch(
        creds.url("/clusters/web"), json=patch, headers=creds.headers
    )
    assert response.status_code == 200, response.text
    await kupe.run_for(10)
    assert (
        await kupe.client.delete(creds.url("/clusters/web"), headers=creds.headers)
    ).status_code in (200, 202, 204)
    await kupe.run_for(10)
    assert await kupe.phase(creds, "web") == "<gone>"

    found = await events(kupe, "cluster")
    versions = [e.resource_version for e in found]
    assert versions == sorted(set(versions))
    assert next(e.type for e in found) == "ADDED"
    assert [e.type for e in found][-1] == "DELETED"
    assert all(e.type == "MODIFIED" for e in found[1:-1])
    reasons = [e.reason for e in found if e.reason is not None]
    assert reasons[0] == "Created"
    assert reasons[-1] == "Deleted"
    for wanted in ("Running", "Updated", "DeleteRequested"):
        assert wanted in reasons, reasons
    # The object is the API's rendering at that version; the API's actor is the key.
    assert all(json.loads(e.object)["resourceVersion"] == str(e.resource_version) for e in found)
    assert found[0].actor.startswith("apikey:")
    assert found[1].actor == "system"
    # The cluster's final version is its last event's.
    async with kupe.runtime.db.read() as session:
        final = await session.scalar(select(func.max(Cluster.resource_version)))
    assert final == found[-1].resource_version


async def test_keys_members_and_tenant_are_recorded(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme")
    response = await kupe.client.post(
        creds.url("/apikeys"), json={"displayName": "ci", "role": "readonly"}, headers=creds.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    response = await kupe.client.delete(
        creds.url(f"/apikeys/{created['id']}"), headers=creds.headers
    )
    assert response.status_code in (200, 204), response.text
    response = await kupe.client.post(
        creds.url("/members"),
        json={"email": "bo@acme.example.com", "role": "readonly"},
        headers=creds.headers,
    )
    assert response.status_code == 201, response.text
    response = await kupe.client.delete(
        creds.url("/members/bo@acme.example.com"), headers=creds.headers
    )
    assert response.status_code in (200, 204), response.text

    keys = [e for e in await events(kupe, "apikey") if e.object_id == created["id"]]
    assert [e.type for e in keys] == ["ADDED", "DELETED"]
    for e in keys:
        assert created["key"] not in e.object
        assert "hash" not in e.object.lower()
    members = [e for e in await events(kupe, "member") if e.name == "bo@acme.example.com"]
    assert [e.type for e in members] == ["ADDED", "DELETED"]
    tenants = await events(kupe, "tenant")
    # Created, then moved by each member change (members live on the tenant).
    assert [e.type for e in tenants] == ["ADDED", "MODIFIED", "MODIFIED"]
    assert {e.resource_version for e in members} <= {e.resource_version for e in tenants}
    assert all(e.request_id for e in keys + members)


async def test_pruning_keeps_each_live_objects_newest_event(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme")
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await kupe.run_for(10)
    before = await events(kupe, "cluster")
    assert len(before) > 2
    kupe.clock.advance(31 * 86400)
    assert await kupe.runtime.event_retention.prune_expired() > 0
    after = await events(kupe, "cluster")
    assert [e.resource_version for e in after] == [before[-1].resource_version]
    async with kupe.runtime.db.read() as session:
        horizon = await EventRepository(session).pruned_through()
    assert horizon == before[-2].resource_version
    # The next change is still MODIFIED, not ADDED: the newest event was kept to compare with.
    patch = {"resources": {"cpu": "2"}}
    response = await kupe.client.patch(
        creds.url("/clusters/web"), json=patch, headers=creds.headers
    )
    assert response.status_code == 200, response.text
    assert (await events(kupe, "cluster"))[-1].type == "MODIFIED"
