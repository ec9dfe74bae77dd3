"""Races, on SQLite and PostgreSQL: concurrent requests against one object, and reconcilers
competing for the same clusters (claims, heartbeats, lease take-over, lost leases)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from kupe.core.clock import FakeClock
from kupe.core.phases import ClusterPhase
from kupe.server.db.leases import FinishResult
from kupe.server.db.models import Cluster
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.metrics import Metrics
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings, read_ledger
from kupe.server.reconciler.claims import claim_key
from kupe.server.reconciler.kind import LeaseLost, Outcome
from kupe.server.reconciler.kinds.cluster import ClusterKind
from kupe.server.reconciler.kinds.cluster_item import CLUSTER_LEASES, ClusterItem
from kupe.server.reconciler.kinds.cluster_rules import ClusterStatusUpdate
from kupe.server.reconciler.loop import Reconciler
from kupe.server.reconciler.policy import RetryPolicy
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings

RACERS = 16


async def cluster_row(kupe: Kupe, name: str) -> Cluster:
    async with kupe.runtime.db.read() as session:
        return (await session.scalars(select(Cluster).where(Cluster.name == name))).one()


async def running_cluster(kupe: Kupe, creds: TenantCreds, name: str = "web") -> httpx.Response:
    created = await kupe.create_cluster(creds, name)
    assert created.status_code == 201, created.text
    await kupe.run_for(9)
    response = await kupe.client.get(creds.url(f"/clusters/{name}"), headers=creds.headers)
    assert response.json()["status"]["phase"] == "Running"
    return response


# -- requests -------------------------------------------------------------------------------


async def test_patches_with_one_if_match_exactly_one_wins(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    current = await running_cluster(kupe, acme)
    etag = current.headers["etag"]

    async def patch(i: int) -> httpx.Response:
        return await kupe.client.patch(
            acme.url("/clusters/web"),
            json={"alerts": {"racer": i}},
            headers={**acme.headers, "If-Match": etag},
        )

    responses = await asyncio.gather(*(patch(i) for i in range(RACERS)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 412: RACERS - 1}
    winner = next(r for r in responses if r.status_code == 200)
    for loser in (r for r in responses if r.status_code == 412):
        assert loser.json()["code"] == "PRECONDITION_FAILED"
    final = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert final.json()["alerts"] == winner.json()["alerts"]
    assert final.json()["generation"] == 2
    assert final.headers["etag"] == winner.headers["etag"] != etag


async def test_compare_and_set_lets_one_of_many_writers_through(kupe: Kupe) -> None:
    """The check is in the UPDATE itself: writers that all read the same version race in the
    database, and only one UPDATE matches."""
    acme = await kupe.tenant(plan="enterprise")
    await running_cluster(kupe, acme)
    row = await cluster_row(kupe, "web")
    db = kupe.runtime.db

    async def write(i: int) -> bool:
        async with db.write() as session:
            version = await db.next_resource_version(session)
            return await ClusterRepository(session, row.tenant_id).compare_and_set(
                row.id, row.resource_version, {"alerts": {"writer": i}, "resource_version": version}
            )

    results = await asyncio.gather(*(write(i) for i in range(RACERS)))
    assert results.count(True) == 1
    after = await cluster_row(kupe, "web")
    assert after.alerts == {"writer": results.index(True)}


async def test_creates_of_one_name_exactly_one_wins(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    responses = await asyncio.gather(*(kupe.create_cluster(acme, "dup") for _ in range(RACERS)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: RACERS - 1}
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert all(body["error"] == "Cluster name already exists" for body in conflicts)
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["dup"]


async def test_one_idempotency_key_sent_concurrently_creates_one_cluster(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    body = {"name": "once", "displayName": "Once", "type": "shared"}

    async def post() -> httpx.Response:
        return await kupe.client.post(
            acme.url("/clusters"), json=body, headers={**acme.headers, "Idempotency-Key": "k-1"}
        )

    responses = await asyncio.gather(*(post() for _ in range(RACERS)))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["resourceVersion"] for r in responses}) == 1
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["once"]


async def test_concurrent_creates_get_distinct_resource_versions(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    responses = await asyncio.gather(
        *(kupe.create_cluster(acme, f"c{i:02d}") for i in range(RACERS))
    )
    assert {r.status_code for r in responses} == {201}
    versions = [int(r.json()["resourceVersion"]) for r in responses]
    assert len(set(versions)) == RACERS


# -- reconcilers ----------------------------------------------------------------------------


class RecordingKind(ClusterKind):
    """The cluster kind, noting which replica reconciled which cluster."""

    def __init__(self, inner: ClusterKind, into: list[tuple[str, str]], who: str) -> None:
        super().__init__(inner.provider, inner.clock, inner.policy, inner.metrics)
        self.into = into
        self.who = who

    async def reconcile(self, item: ClusterItem, check_lease: object = None) -> Outcome:  # type: ignore[override]
        self.into.append((self.who, item.id))
        await asyncio.sleep(0)  # let the other replica run meanwhile
        return await super().reconcile(item, check_lease)  # type: ignore[arg-type]


def replica(
    kupe: Kupe,
    actor: str,
    workers: int = 32,
    record: tuple[list[tuple[str, str]], str] | None = None,
) -> tuple[Reconciler, SimulatedProvider, ClusterKind]:
    """Another reconciler on the same database and the same simulated cloud, as a second
    process would have, with its own provider instance (named `actor` in the cloud's ledger)."""
    runtime = kupe.runtime
    settings = runtime.settings.reconciler.model_copy(update={"workers": workers})
    provider = SimulatedProvider(
        runtime.provider.state_file,  # type: ignore[attr-defined]
        clock=kupe.clock,
        metrics=Metrics(),
        cluster_domain=runtime.settings.cluster_domain,
        timings=SimulatedTimings(provision_seconds=8),
        actor=actor,
    )
    kind = ClusterKind(provider, kupe.clock, RetryPolicy(settings), provider.metrics)
    if record is not None:
        kind = RecordingKind(kind, *record)
    reconciler = Reconciler(runtime.db, [kind], kupe.clock, provider.metrics, settings)
    return reconciler, provider, kind


async def claim_one(kupe: Kupe, reconciler: Reconciler, kind: ClusterKind) -> ClusterItem:
    """Lease the one due cluster as `reconciler` would, and hold the claim in its book."""
    token, until = reconciler.claims.new_token(), reconciler.claims.lease_until()
    async with kupe.runtime.db.write() as session:
        [item] = await CLUSTER_LEASES.claim(
            session, now=kupe.clock.now(), owner=token, lease_until=until, limit=10
        )
    reconciler.claims.hold(kind, [item], until)
    return item


async def test_replicas_claim_disjoint_work_and_create_each_cluster_once(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    names = [f"c{i:02d}" for i in range(40)]
    for name in names:
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    handled: list[tuple[str, str]] = []
    # Small batches: many rounds.
    first, first_cloud, _ = replica(kupe, "replica-a", workers=8, record=(handled, "a"))
    second, second_cloud, _ = replica(kupe, "replica-b", workers=8, record=(handled, "b"))

    async def round_() -> None:
        handled.clear()
        await asyncio.gather(first.drain(max_rounds=1), second.drain(max_rounds=1))
        ids = [cluster_id for _, cluster_id in handled]
        assert len(ids) == len(set(ids)), "a cluster was claimed by both replicas at once"

    for _ in range(10):
        await round_()
    for _ in range(12):
        kupe.clock.advance(1)
        await round_()
    assert [await kupe.phase(acme, name) for name in names] == ["Running"] * len(names)
    creates = Counter(
        e.cluster_id for e in read_ledger(first_cloud.state_file) if e.operation == "create"
    )
    assert len(creates) == len(names)
    assert set(creates.values()) == {1}
    first_cloud.close()
    second_cloud.close()


async def test_heartbeat_keeps_a_lease_and_an_expired_one_is_taken_over(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    lease = kupe.runtime.settings.reconciler.lease_seconds
    holder, holder_cloud, kind = replica(kupe, "holder")
    taker, taker_cloud, _ = replica(kupe, "taker")

    item = await claim_one(kupe, holder, kind)
    key = claim_key(kind, item)
    for _ in range(3):  # well past the original lease, but extended every 0.6 of it
        kupe.clock.advance(lease * 0.6)
        assert await holder.heartbeat() == {key}
        assert await taker.drain() == 0
        holder.claims.check(key)  # still surely ours

    kupe.clock.advance(lease + 1)  # the holder stopped beating (stuck, or cut off)
    assert await taker.drain() == 1
    assert await kupe.phase(acme, "web") == "Provisioning"
    assert await holder.heartbeat() == set()  # it learns it lost the claim ...
    with pytest.raises(LeaseLost):
        holder.claims.check(key)  # ... and its worker stops before touching anything
    holder_cloud.close()
    taker_cloud.close()


async def test_a_worker_that_lost_its_lease_writes_nothing(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    stale, stale_cloud, kind = replica(kupe, "stale")
    fresh, fresh_cloud, _ = replica(kupe, "fresh")
    item = await claim_one(kupe, stale, kind)

    kupe.clock.advance(kupe.runtime.settings.reconciler.lease_seconds + 1)
    assert await fresh.drain() == 1  # took over, created it in the cloud, recorded the outcome
    before = await cluster_row(kupe, "web")

    # The stale worker now gets to run: it must neither touch the cloud nor the database.
    stale.sweeper.backlog.append((kind, item))
    await stale.drain()
    failed = Outcome(ClusterStatusUpdate(failure_count=0, phase=ClusterPhase.FAILED), 1.0)
    assert await stale.writer.write(kind, item, failed) is FinishResult.LOST_LEASE
    after = await cluster_row(kupe, "web")
    assert (after.resource_version, after.phase) == (before.resource_version, "Provisioning")
    actors = {e.actor for e in read_ledger(stale_cloud.state_file)}
    assert actors == {"fresh"}
    lost = stale.metrics.registry.get_sample_value(
        "kupe_reconciler_reconciles_total", {"kind": "cluster", "outcome": "lost_lease"}
    )
    assert lost == 1
    stale_cloud.close()
    fresh_cloud.close()


async def test_a_process_reclaiming_its_own_expired_claim_gets_a_new_lease(
    tmp_path: Path, database_url: str
) -> None:
    """Leases are per claim, not per process: an old task of this very process cannot write
    over the result of its newer claim of the same cluster."""
    settings = test_settings(tmp_path, database_url)
    async with running_kupe(settings, FakeClock()) as kupe:
        acme = await kupe.tenant()
        await kupe.create_cluster(acme, "web")
        reconciler = kupe.runtime.reconciler
        kind = next(k for k in kupe.runtime.kinds if k.name == "cluster")
        old = await claim_one(kupe, reconciler, kind)  # type: ignore[arg-type]
        kupe.clock.advance(settings.reconciler.lease_seconds + 1)
        new = await claim_one(kupe, reconciler, kind)  # type: ignore[arg-type]
        assert old.id == new.id
        assert old.lease != new.lease
        now = kupe.clock.now()
        async with kupe.runtime.db.write() as session:
            stale = await CLUSTER_LEASES.finish(session, old, values={}, next_at=now, now=now)
        assert stale is FinishResult.LOST_LEASE
        async with kupe.runtime.db.write() as session:
            current = await CLUSTER_LEASES.finish(session, new, values={}, next_at=now, now=now)
        assert current is FinishResult.APPLIED


async def test_leases_expire_by_the_clock_and_wait_until_then(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    async with kupe.runtime.db.write() as session:
        await CLUSTER_LEASES.claim(
            session,
            now=kupe.clock.now(),
            owner="elsewhere:1",
            lease_until=kupe.clock.now() + timedelta(seconds=10),
            limit=1,
        )
    assert await kupe.step(9) == 1  # the tenant's draft invoice only
    assert await kupe.step(2) == 1


class _UnreachableLeases:
    """The cluster leases, except that claiming fails as when the database has just gone."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    async def claim(self, *_args: object, **_kwargs: object) -> list[ClusterItem]:
        raise ConnectionResetError("the database went away")

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class UnreachableKind(ClusterKind):
    """A second kind whose claim fails after the first kind's claim succeeded."""

    name = "unreachable"

    def __init__(self, inner: ClusterKind) -> None:
        super().__init__(inner.provider, inner.clock, inner.policy, inner.metrics)
        self.leases = _UnreachableLeases(inner.leases)  # type: ignore[assignment]


async def test_work_claimed_before_another_kinds_claim_fails_is_worked_on(kupe: Kupe) -> None:
    """Seen in CI: the database went away between the claims of two kinds; the first kind's
    items were leased but never handed to a worker, and the heartbeat kept them so for ever."""
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    reconciler, cloud, kind = replica(kupe, "first")
    reconciler.kinds = [kind, UnreachableKind(kind)]  # claimed in this order first

    assert await reconciler.drain(max_rounds=1) == 1
    assert await kupe.phase(acme, "web") == "Provisioning"
    assert len(reconciler.claims) == 0  # nothing left held and unworked
    creates = [e for e in read_ledger(cloud.state_file) if e.operation == "create"]
    assert [e.actor for e in creates] == ["first"]
    cloud.close()


async def test_an_idle_reconciler_takes_no_write_lock_and_still_claims_new_work(
    kupe: Kupe,
) -> None:
    """A poll with nothing due reads and writes nothing: on SQLite a claim is the one writer's
    lock, which every idle replica used to take for every kind at every poll."""
    acme = await kupe.tenant()
    await running_cluster(kupe, acme)
    db = kupe.runtime.db
    writes = 0
    write = db.write

    def counting_write() -> object:
        nonlocal writes
        writes += 1
        return write()

    db.write = counting_write  # type: ignore[method-assign]
    try:
        assert await kupe.runtime.reconciler.drain() == 0
        assert writes == 0
    finally:
        db.write = write  # type: ignore[method-assign]
    created = await kupe.create_cluster(acme, "api")
    assert created.status_code == 201
    assert await kupe.runtime.reconciler.drain() >= 1
    assert await kupe.phase(acme, "api") == "Provisioning"
