"""The hot-read path (GET one cluster, list clusters) answers exactly what the session path
answers, on both databases, and a busy SQLite never blocks the event loop."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from kupe.server.db.hotread import HotReads, hot_reads_for
from kupe.server.db.models import Cluster
from kupe.server.db.refs import TenantRef
from kupe.server.db.repositories.access import AccessRepository
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.db.repositories.cluster import ClusterRepository
from tests.support.harness import Kupe


def _hot(kupe: Kupe) -> HotReads:
    hot = kupe.runtime.db.hot
    assert hot is not None
    return hot


async def test_hot_reads_match_the_session_path(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex", plan="enterprise")
    for name in ("charlie", "alpha", "bravo"):
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    assert (await kupe.create_cluster(globex, "golf")).status_code == 201
    key_id = "ak-" + acme.key.split("_")[1]
    # Give the key every timestamp authentication reads, so their conversion is checked too.
    async with kupe.runtime.db.write() as session:
        key = await ApiKeyRepository(session).by_id(key_id)
        assert key is not None
        key.expires_at = kupe.clock.now() + timedelta(days=3)
        key.last_used_at = kupe.clock.now() - timedelta(seconds=5)
    hot = _hot(kupe)

    for tenant, cluster in (
        ("acme", "bravo"),
        ("acme", "nope"),
        ("globex", "golf"),
        ("nobody", ""),
    ):
        found = await hot.key_with_tenant(key_id, tenant, Cluster, cluster)
        async with kupe.runtime.db.read() as session:
            expected = await AccessRepository(session).key_with_tenant_and_object(
                key_id, tenant, Cluster, cluster
            )
        assert found is not None
        assert expected is not None
        stored, stored_tenant, stored_version = expected
        for field in ("id", "tenant_id", "key_hash", "role", "revoked_at", "expires_at"):
            assert getattr(found.key, field) == getattr(stored, field), field
        assert found.key.last_used_at == stored.last_used_at
        if stored_tenant is None:
            assert found.tenant is None
        else:
            assert found.tenant is not None
            assert found.tenant == TenantRef.of(stored_tenant)
        if stored_version is None:
            assert found.object_id is None
        else:
            assert (found.object_id, found.object_resource_version) == (
                stored_version.id,
                stored_version.resource_version,
            )
    # A cluster of another tenant is never found through this key.
    other = await hot.key_with_tenant(key_id, "globex", Cluster, "golf")
    assert other is not None
    assert other.object_id is None
    assert await hot.key_with_tenant("ak-zzzzzzzz", "acme", Cluster, "alpha") is None

    own = await hot.key_with_tenant(key_id, "acme", None)
    assert own is not None
    assert own.tenant is not None
    acme_id = own.tenant.id
    async with kupe.runtime.db.read() as session:
        repo = ClusterRepository(session, acme_id)
        for after, limit in ((None, None), (None, 2), ("alpha", 1), ("charlie", None)):
            expected_versions = await repo.versions(after=after, limit=limit)
            found_versions = await hot.object_versions(Cluster, acme_id, after=after, limit=limit)
            assert found_versions == [(v.id, v.resource_version, v.name) for v in expected_versions]
    assert [
        name
        for _id, _rv, name in await hot.object_versions(Cluster, acme_id, after=None, limit=None)
    ] == ["alpha", "bravo", "charlie"]


async def test_revocation_is_immediate_on_the_hot_path(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    other = await kupe.api_key("acme", "readonly")
    headers = {"Authorization": f"Bearer {other}"}
    assert (await kupe.client.get(acme.url("/clusters/web"), headers=headers)).status_code == 200
    key_id = "ak-" + other.split("_")[1]
    revoked = await kupe.client.delete(acme.url(f"/apikeys/{key_id}"), headers=acme.headers)
    assert revoked.status_code == 204
    for path in ("/clusters/web", "/clusters"):
        response = await kupe.client.get(acme.url(path), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "API key has been revoked"


async def test_a_busy_sqlite_is_waited_for_off_the_event_loop(
    tmp_path: Path, sqlite_template: Path
) -> None:
    target = tmp_path / "kupe.db"
    shutil.copyfile(sqlite_template, target)
    # Another process holds the database exclusively: a WAL reader gets "busy" at once.
    holder = sqlite3.connect(target, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute(
        "INSERT INTO tenants (id, name, display_name, contact_email, plan, enforce_metrics_limit,"
        " enforce_log_limit, phase, resource_version, created_at) VALUES ('t-1', 'acme', 'Acme',"
        " 'a@acme.example.com', 'pro', 0, 0, 'Active', 1, '2026-11-28 10:00:00.000000')"
    )
    hot = hot_reads_for(make_url(f"sqlite+aiosqlite:///{target}"), timeout=10, busy_seconds=30)
    assert hot is not None
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    try:
        read = asyncio.create_task(hot.object_versions(Cluster, "t-1", after=None, limit=None))
        await asyncio.sleep(0.5)
        assert not read.done()
        assert ticks >= 10, "the event loop stalled while SQLite was busy"
        holder.execute("COMMIT")
        holder.close()
        assert await asyncio.wait_for(read, 30) == []
        # The loop's own connection is fine afterwards and sees the committed row.
        assert await hot.key_with_tenant("ak-none", "acme", None) is None
    finally:
        ticking.cancel()
        await hot.close()
