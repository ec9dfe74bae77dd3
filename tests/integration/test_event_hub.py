"""The shared outbox reader: one read serves every watcher; a watcher that falls behind is ended
with a bounded queue; closing ends every stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kupe.server.db.repositories.tenant import TenantRepository
from tests.support.harness import Kupe, running_kupe, test_settings


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    settings = test_settings(tmp_path, database_url, events_watcher_queue=3)
    async with running_kupe(settings) as app:
        yield app


async def tenant_id(kupe: Kupe, name: str) -> str:
    async with kupe.runtime.db.read() as session:
        row = await TenantRepository(session).by_name(name)
    assert row is not None
    return row.id


async def eventually(check: object, wait: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + wait
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def test_one_read_serves_many_watchers(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme")
    hub = kupe.runtime.events.hub
    acme = await tenant_id(kupe, "acme")
    subs = [await hub.subscribe(acme, "cluster") for _ in range(500)]
    reads = hub.reads
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await eventually(lambda: all(sub.queue for sub in subs))
    # A few polls at most, not one query per watcher (500).
    assert hub.reads - reads < 50, hub.reads - reads
    assert {sub.queue[0].name for sub in subs} == {"web"}
    for sub in subs:
        hub.unsubscribe(sub)


async def test_a_watcher_that_falls_behind_is_ended(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme", plan="enterprise")
    hub = kupe.runtime.events.hub
    slow = await hub.subscribe(await tenant_id(kupe, "acme"), "cluster")
    for index in range(5):
        assert (await kupe.create_cluster(creds, f"c{index}")).status_code == 201
    await eventually(lambda: slow.ended)
    assert slow.overflowed
    assert len(slow.queue) == 3
    # What it holds is still delivered, in order, then the stream ends.
    names = []
    while (event := await slow.next(0.1)) is not None:
        names.append(event.name)
    assert names == ["c0", "c1", "c2"]
    assert hub.watchers == 0


async def test_closing_ends_every_stream(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    hub = kupe.runtime.events.hub
    subs = [await hub.subscribe("x", "cluster") for _ in range(10)]
    hub.end_streams()
    for sub in subs:
        assert await asyncio.wait_for(sub.next(60), 1) is None


async def test_a_watcher_after_an_idle_spell_starts_from_now(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme", plan="enterprise")
    hub = kupe.runtime.events.hub
    for index in range(3):
        assert (await kupe.create_cluster(creds, f"old{index}")).status_code == 201
    await asyncio.sleep(0.3)  # the reader looks while nobody watches
    sub = await hub.subscribe(await tenant_id(kupe, "acme"), "cluster")
    assert (await kupe.create_cluster(creds, "new")).status_code == 201
    await eventually(lambda: bool(sub.queue))
    await asyncio.sleep(0.2)
    assert [event.name for event in sub.queue] == ["new"]
    hub.unsubscribe(sub)
