"""The periodic resync of settled clusters, on SQLite and PostgreSQL: swept in bulk (one
provider call, one compare-and-set write, nothing a client can see changes), drift handed to
the full reconcile, and never a write over a change made while the sweep was looking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from kupe.server.db.models import Cluster
from kupe.server.metrics import Metrics
from kupe.server.providers.base import InfraState, TransientProviderError
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings, read_ledger
from kupe.server.reconciler.kinds.cluster import ClusterKind
from kupe.server.reconciler.kinds.cluster_item import CLUSTER_LEASES
from kupe.server.reconciler.loop import Reconciler
from kupe.server.reconciler.policy import RetryPolicy
from tests.support.harness import Kupe, TenantCreds

Observed = dict[str, InfraState | None]


async def settled_fleet(kupe: Kupe, creds: TenantCreds, count: int) -> list[str]:
    names = [f"c{i}" for i in range(count)]
    for name in names:
        assert (await kupe.create_cluster(creds, name)).status_code == 201
    await kupe.run_for(9)
    assert [await kupe.phase(creds, name) for name in names] == ["Running"] * count
    return names


async def rows(kupe: Kupe) -> dict[str, Cluster]:
    async with kupe.runtime.db.read() as session:
        found = await session.scalars(select(Cluster).where(Cluster.removed_at.is_(None)))
        return {row.name: row for row in found}


async def bodies(kupe: Kupe, creds: TenantCreds) -> dict[str, dict[str, object]]:
    response = await kupe.client.get(creds.url("/clusters"), headers=creds.headers)
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json()["items"]}


def simulated(kupe: Kupe) -> SimulatedProvider:
    provider = kupe.runtime.provider
    assert isinstance(provider, SimulatedProvider)
    return provider


def record_calls(provider: SimulatedProvider) -> list[tuple[str, list[str]]]:
    """Log every observe / observe_many call of `provider` (without changing what they do)."""
    calls: list[tuple[str, list[str]]] = []
    observe, observe_many = provider.observe, provider.observe_many

    async def one(cluster_id: str) -> InfraState | None:
        calls.append(("observe", [cluster_id]))
        return await observe(cluster_id)

    async def many(cluster_ids: Sequence[str]) -> Observed:
        calls.append(("observe_many", list(cluster_ids)))
        return await observe_many(cluster_ids)

    provider.observe = one  # type: ignore[method-assign]
    provider.observe_many = many  # type: ignore[method-assign]
    return calls


def meanwhile(provider: SimulatedProvider, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` once, after the sweep has read its clusters and while it observes them."""
    observe_many = provider.observe_many

    async def many(cluster_ids: Sequence[str]) -> Observed:
        provider.observe_many = observe_many  # type: ignore[method-assign]
        states = await observe_many(cluster_ids)
        await action()
        return states

    provider.observe_many = many  # type: ignore[method-assign]


def resyncs(kupe: Kupe) -> float:
    value = kupe.runtime.metrics.registry.get_sample_value(
        "kupe_reconciler_reconciles_total", {"kind": "cluster", "outcome": "ok"}
    )
    return value or 0.0


async def sweep(reconciler: Reconciler) -> int:
    """One sweep of every kind, as the loop runs it; how many items it read."""
    read, _full = await reconciler.sweeper.sweep(reconciler.kinds)
    return read


async def test_settled_clusters_are_resynced_in_bulk_and_nothing_visible_changes(
    kupe: Kupe,
) -> None:
    acme = await kupe.tenant(plan="enterprise")
    names = await settled_fleet(kupe, acme, 6)
    provider = simulated(kupe)
    before, shown = await rows(kupe), await bodies(kupe, acme)
    ledger = read_ledger(provider.state_file)
    calls = record_calls(provider)
    counted = resyncs(kupe)
    resync = kupe.runtime.settings.reconciler.resync_seconds

    kupe.clock.advance(resync + 1)
    now = kupe.clock.now()
    assert await kupe.step() == len(names)

    # One provider call observed them all; none was looked at one by one.
    assert [(kind, sorted(ids)) for kind, ids in calls] == [
        ("observe_many", sorted(row.id for row in before.values()))
    ]
    after = await rows(kupe)
    for name in names:
        assert after[name].resource_version == before[name].resource_version
        assert after[name].lease_owner is None
        due = after[name].next_reconcile_at
        assert now + timedelta(seconds=0.8 * resync) <= due <= now + timedelta(seconds=resync)
    assert await bodies(kupe, acme) == shown
    assert read_ledger(provider.state_file) == ledger  # observing never touched the cloud
    assert resyncs(kupe) == counted + len(names)
    assert await kupe.step() == 0  # nothing is due any more


async def test_drift_found_by_the_sweep_takes_the_full_path(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    names = await settled_fleet(kupe, acme, 4)
    provider = simulated(kupe)
    before = await rows(kupe)
    gone, sick = before["c1"], before["c2"]
    await provider.delete(gone.id)  # the cloud lost it: it must be built again
    await provider.set_healthy(sick.id, False)
    kupe.clock.advance(provider.timings.delete_seconds)
    calls = record_calls(provider)

    await kupe.step(kupe.runtime.settings.reconciler.resync_seconds + 1)

    # The sweep observed all of them at once; only the drifted ones were looked at again.
    assert calls[0][0] == "observe_many"
    assert sorted(ids[0] for kind, ids in calls if kind == "observe") == sorted([gone.id, sick.id])
    assert await kupe.phase(acme, "c1") == "Provisioning"
    assert await kupe.phase(acme, "c2") == "Degraded"
    after = await rows(kupe)
    for name in ("c1", "c2"):
        assert after[name].resource_version > before[name].resource_version
    for name in set(names) - {"c1", "c2"}:
        assert after[name].resource_version == before[name].resource_version
    creates = [e for e in read_ledger(provider.state_file) if e.operation == "create"]
    assert [e.cluster_id for e in creates].count(gone.id) == 2

    await kupe.run_for(9)
    await provider.set_healthy(sick.id, True)
    await kupe.step(kupe.runtime.settings.reconciler.resync_seconds + 1)
    assert [await kupe.phase(acme, name) for name in names] == ["Running"] * len(names)


async def test_a_spec_change_while_the_sweep_observes_is_not_lost(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    await settled_fleet(kupe, acme, 3)

    async def patch() -> None:
        response = await kupe.client.patch(
            acme.url("/clusters/c0"), json={"resources": {"cpu": "3"}}, headers=acme.headers
        )
        assert response.status_code == 200, response.text

    meanwhile(simulated(kupe), patch)
    kupe.clock.advance(kupe.runtime.settings.reconciler.resync_seconds + 1)
    now = kupe.clock.now()
    assert await sweep(kupe.runtime.reconciler) == 3

    after = await rows(kupe)
    assert after["c0"].generation == 2
    assert after["c0"].next_reconcile_at <= now  # still due: the sweep wrote nothing over it
    for name in ("c1", "c2"):
        assert after[name].next_reconcile_at > now
    await kupe.step()
    body = (await bodies(kupe, acme))["c0"]
    assert body["status"]["observedGeneration"] == 2  # type: ignore[index]
    assert body["resources"]["cpu"] == "3"  # type: ignore[index]


async def test_a_drifted_cluster_changed_while_the_sweep_observes_is_not_claimed(
    kupe: Kupe,
) -> None:
    """The sweep claims drifted clusters only as it read them; a changed one is due anyway and
    is reconciled from what it is now."""
    acme = await kupe.tenant(plan="enterprise")
    await settled_fleet(kupe, acme, 2)
    provider = simulated(kupe)
    await provider.set_healthy((await rows(kupe))["c0"].id, False)

    async def patch() -> None:
        response = await kupe.client.patch(
            acme.url("/clusters/c0"), json={"alerts": {"email": "x"}}, headers=acme.headers
        )
        assert response.status_code == 200, response.text

    meanwhile(provider, patch)
    kupe.clock.advance(kupe.runtime.settings.reconciler.resync_seconds + 1)
    now = kupe.clock.now()
    reconciler = kupe.runtime.reconciler
    assert await sweep(reconciler) == 2
    assert not reconciler.sweeper.backlog
    changed = (await rows(kupe))["c0"]
    assert (changed.generation, changed.lease_owner) == (2, None)
    assert changed.next_reconcile_at <= now
    await kupe.step()
    body = (await bodies(kupe, acme))["c0"]
    assert body["status"]["phase"] == "Degraded"  # type: ignore[index]


async def test_a_delete_while_the_sweep_observes_is_not_lost(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    await settled_fleet(kupe, acme, 2)

    async def delete() -> None:
        response = await kupe.client.delete(acme.url("/clusters/c1"), headers=acme.headers)
        assert response.status_code == 204, response.text

    meanwhile(simulated(kupe), delete)
    await kupe.step(kupe.runtime.settings.reconciler.resync_seconds + 1)
    assert await kupe.phase(acme, "c1") == "Terminating"
    await kupe.run_for(4)
    assert await kupe.phase(acme, "c1") == "<gone>"
    assert await kupe.phase(acme, "c0") == "Running"


async def test_a_cluster_claimed_elsewhere_while_the_sweep_observes_is_left_alone(
    kupe: Kupe,
) -> None:
    acme = await kupe.tenant()
    await settled_fleet(kupe, acme, 1)
    kupe.clock.advance(kupe.runtime.settings.reconciler.resync_seconds + 1)
    now = kupe.clock.now()
    lease_until = now + timedelta(seconds=kupe.runtime.settings.reconciler.lease_seconds)

    async def claim() -> None:
        async with kupe.runtime.db.write() as session:
            claimed = await CLUSTER_LEASES.claim(
                session, now=now, owner="elsewhere:1", lease_until=lease_until, limit=10
            )
        assert [item.name for item in claimed] == ["c0"]

    meanwhile(simulated(kupe), claim)
    before = (await rows(kupe))["c0"]
    assert await sweep(kupe.runtime.reconciler) == 1
    after = (await rows(kupe))["c0"]
    assert (after.lease_owner, after.next_reconcile_at) == ("elsewhere:1", before.next_reconcile_at)


async def test_two_replicas_sweeping_the_same_clusters_write_each_once(kupe: Kupe) -> None:
    """Both read the same due clusters; whichever writes second finds them no longer due and
    writes nothing, so the first one's next resync times stand."""
    acme = await kupe.tenant(plan="enterprise")
    names = await settled_fleet(kupe, acme, 5)
    runtime = kupe.runtime
    second_cloud = SimulatedProvider(
        simulated(kupe).state_file,
        clock=kupe.clock,
        metrics=Metrics(),
        cluster_domain=runtime.settings.cluster_domain,
        timings=SimulatedTimings(),
        actor="replica-b",
    )
    settings = runtime.settings.reconciler
    kind = ClusterKind(second_cloud, kupe.clock, RetryPolicy(settings), second_cloud.metrics)
    second = Reconciler(runtime.db, [kind], kupe.clock, second_cloud.metrics, settings)
    won: dict[str, datetime] = {}

    async def second_sweeps_first() -> None:
        assert await sweep(second) == len(names)
        won.update({name: row.next_reconcile_at for name, row in (await rows(kupe)).items()})

    meanwhile(simulated(kupe), second_sweeps_first)
    kupe.clock.advance(runtime.settings.reconciler.resync_seconds + 1)
    first_count = resyncs(kupe)
    assert await sweep(runtime.reconciler) == len(names)

    assert resyncs(kupe) == first_count  # the first replica's write matched nothing
    second_count = second.metrics.registry.get_sample_value(
        "kupe_reconciler_reconciles_total", {"kind": "cluster", "outcome": "ok"}
    )
    assert second_count == len(names)
    assert {name: row.next_reconcile_at for name, row in (await rows(kupe)).items()} == won
    second_cloud.close()


async def test_a_failed_bulk_observation_falls_back_to_the_full_path(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    names = await settled_fleet(kupe, acme, 3)
    provider = simulated(kupe)
    before = await rows(kupe)

    async def unavailable(cluster_ids: Sequence[str]) -> Observed:
        raise TransientProviderError("describe call throttled")

    provider.observe_many = unavailable  # type: ignore[method-assign]
    calls = record_calls(provider)
    await kupe.step(kupe.runtime.settings.reconciler.resync_seconds + 1)

    assert sorted(ids[0] for kind, ids in calls if kind == "observe") == sorted(
        row.id for row in before.values()
    )
    after = await rows(kupe)
    for name in names:
        assert after[name].resource_version == before[name].resource_version
        assert after[name].next_reconcile_at > kupe.clock.now()
        assert after[name].lease_owner is None


async def test_the_loop_sweeps_settled_clusters_without_busy_polling(kupe: Kupe) -> None:
    """The real loop (not `drain`): it sweeps what is due, then waits for the next sweep."""
    acme = await kupe.tenant(plan="enterprise")
    await settled_fleet(kupe, acme, 3)
    calls = record_calls(simulated(kupe))
    reconciler = kupe.runtime.reconciler
    kupe.clock.advance(kupe.runtime.settings.reconciler.resync_seconds + 1)
    sweeps = 0
    original = reconciler.sweeper.sweep

    async def counted(kinds: Sequence[object]) -> tuple[int, bool]:
        nonlocal sweeps
        sweeps += 1
        return await original(kinds)  # type: ignore[arg-type]

    reconciler.sweeper.sweep = counted  # type: ignore[method-assign]
    reconciler.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if calls:
                break
        await asyncio.sleep(0.3)
    finally:
        await reconciler.stop()
    assert [kind for kind, _ in calls] == ["observe_many"]
    assert sweeps == 1  # the next one is a poll interval away
    assert all(row.next_reconcile_at > kupe.clock.now() for row in (await rows(kupe)).values())
