"""Bulk observation: the protocol's default asks one by one; the simulated cloud answers many
in one read and agrees with `observe` on every state a cluster can be in."""

from __future__ import annotations

from pathlib import Path

from kupe.core.clock import FakeClock
from kupe.server.metrics import Metrics
from kupe.server.providers.base import ClusterSpec, InfraPhase, InfraState, Provider
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings, read_ledger

READY = InfraState(
    id="a",
    phase=InfraPhase.READY,
    version="1.32",
    kubernetes_version="v1.32.5",
    endpoint="https://a.t.kupe.localhost",
    ca_certificate="ca",
    cpu_millis=1000,
    memory_bytes=2**30,
    storage_bytes=2**30,
)


class OneByOne(Provider):
    """A provider with no bulk call of its own."""

    name = "one-by-one"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def observe(self, cluster_id: str) -> InfraState | None:
        self.asked.append(cluster_id)
        return READY if cluster_id == "a" else None

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        raise NotImplementedError

    async def delete(self, cluster_id: str) -> InfraState | None:
        raise NotImplementedError


async def test_the_default_observe_many_asks_one_by_one() -> None:
    provider = OneByOne()
    assert await provider.observe_many(["a", "b"]) == {"a": READY, "b": None}
    assert provider.asked == ["a", "b"]


def spec(name: str, version: str = "1.31") -> ClusterSpec:
    return ClusterSpec(
        id=f"id-{name}",
        tenant="acme",
        name=name,
        type="shared",
        version=version,
        cpu_millis=1000,
        memory_bytes=2**30,
        storage_bytes=2**30,
    )


async def test_simulated_observe_many_agrees_with_observe_in_every_state(tmp_path: Path) -> None:
    clock = FakeClock()
    cloud = SimulatedProvider(
        tmp_path / "cloud.db",
        clock=clock,
        metrics=Metrics(),
        cluster_domain="kupe.localhost",
        timings=SimulatedTimings(provision_seconds=8, upgrade_seconds=5, delete_seconds=3),
    )
    try:
        old = ["ready", "unhealthy", "upgrading", "upgraded", "deleting", "deleted"]
        for name in old:
            await cloud.ensure(spec(name))
        clock.advance(20)
        await cloud.set_healthy("id-unhealthy", False)
        await cloud.ensure(spec("upgraded", "1.32"))
        await cloud.delete("id-deleted")
        clock.advance(6)  # both finished, neither folded in yet
        await cloud.ensure(spec("upgrading", "1.32"))
        await cloud.delete("id-deleting")
        await cloud.ensure(spec("creating"))
        clock.advance(1)
        ledger = read_ledger(cloud.state_file)
        ids = [f"id-{name}" for name in [*old, "creating", "missing"]]

        many = await cloud.observe_many(ids)

        assert read_ledger(cloud.state_file) == ledger  # folding a transition is no operation
        assert many == {cluster_id: await cloud.observe(cluster_id) for cluster_id in ids}
        phases = {i: state.phase if state else None for i, state in many.items()}
        assert phases == {
            "id-ready": InfraPhase.READY,
            "id-unhealthy": InfraPhase.UNHEALTHY,
            "id-upgrading": InfraPhase.UPDATING,
            "id-upgraded": InfraPhase.READY,
            "id-deleting": InfraPhase.DELETING,
            "id-deleted": None,
            "id-creating": InfraPhase.CREATING,
            "id-missing": None,
        }
        upgraded = many["id-upgraded"]
        assert upgraded is not None
        assert upgraded.version == "1.32"
        assert await cloud.count() == 6  # the finished teardown was folded in
    finally:
        cloud.close()
