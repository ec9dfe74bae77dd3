"""One real cluster through its life: create, kubectl, a Deployment, resize, upgrade, delete."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kupe.server.providers.base import InfraPhase, PermanentProviderError
from kupe.server.providers.local.cluster_api import parse_quantity
from kupe.server.providers.local.processes import cluster_processes
from kupe.server.providers.local.provider import LocalProvider
from kupe.server.providers.pki import issue_cluster_pki
from tests.local.support import GIB, admin_kubeconfig, kubectl, kubectl_json, spec, wait_for


def operations(provider: LocalProvider) -> dict[str, float]:
    counted: dict[str, float] = {}
    for metric in provider.context.metrics.provider_operations.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["provider"] == "local":
                counted[sample.labels["operation"]] = sample.value
    return counted


async def allocatable(kubeconfig: Path) -> tuple[int, int, int, dict[str, str]]:
    """The nodes' allocatable cpu (millicores), memory and ephemeral storage, summed, and
    each node's uid by name."""
    nodes = (await kubectl_json(kubeconfig, "get", "nodes"))["items"]
    cpu = memory = storage = 0
    for node in nodes:
        assert any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        ), node["metadata"]["name"]
        values = node["status"]["allocatable"]
        cpu += int(parse_quantity(values["cpu"]) * 1000)
        memory += int(parse_quantity(values["memory"]))
        storage += int(parse_quantity(values["ephemeral-storage"]))
    return cpu, memory, storage, {n["metadata"]["name"]: n["metadata"]["uid"] for n in nodes}


async def running_pods(kubeconfig: Path, selector: str, count: int, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    phases: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        pods = (await kubectl_json(kubeconfig, "get", "pods", "-l", selector))["items"]
        phases = [pod["status"].get("phase", "") for pod in pods]
        if phases.count("Running") == count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"pods {selector}: {phases}")


async def test_a_cluster_serves_kubectl_resizes_upgrades_and_goes_away(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
    tmp_path: Path,
) -> None:
    provider = make_provider()
    wanted = spec("1.36")
    cleanup.append((provider, wanted.id))

    await provider.ensure(wanted)
    state = await wait_for(provider, wanted.id, InfraPhase.READY)
    assert state.matches(wanted)
    assert state.endpoint.startswith("https://127.0.0.1:")
    assert (state.version, state.kubernetes_version) == ("1.36", "v1.36.3")
    assert operations(provider) == {"create": 1.0}

    # The CA handed out is the one that signed the serving certificate: TLS verifies with it
    # and fails with another CA.
    context = ssl.create_default_context(cadata=state.ca_certificate)
    async with httpx.AsyncClient(verify=context) as client:
        version = (await client.get(f"{state.endpoint}/version")).json()
    assert version["gitVersion"] == "v1.36.3"
    other = issue_cluster_pki("other/ca", "127.0.0.1", datetime.now(UTC)).ca_certificate_pem
    async with httpx.AsyncClient(verify=ssl.create_default_context(cadata=other)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{state.endpoint}/version")

    cluster_dir = provider.workdir.cluster_dir(wanted.id)
    config = admin_kubeconfig(cluster_dir, state.endpoint, tmp_path)
    cpu, memory, storage, uids = await allocatable(config)
    assert (cpu, memory, storage) == (3_501, 7 * GIB + 123, 20 * GIB + 7)

    created = await kubectl(config, "create", "deployment", "web", "--image=nginx", "--replicas=3")
    assert created.code == 0, created.err
    assert (await kubectl(config, "create", "configmap", "keep", "--from-literal=a=1")).code == 0
    await running_pods(config, "app=web", 3)

    # Resize in place: the same nodes, new allocatable, the cluster ready throughout.
    bigger = dataclasses.replace(
        wanted, cpu_millis=6_000, memory_bytes=12 * GIB + 5, storage_bytes=50 * GIB + 3
    )
    resized = await provider.ensure(bigger)
    assert resized.phase is InfraPhase.READY
    assert resized.matches(bigger)
    cpu, memory, storage, uids_after = await allocatable(config)
    assert (cpu, memory, storage) == (6_000, 12 * GIB + 5, 50 * GIB + 3)
    assert uids_after == uids
    await running_pods(config, "app=web", 3)
    assert operations(provider) == {"create": 1.0, "update": 1.0}

    # Upgrade 1.36 -> 1.37 with the same data; observe says UPDATING while it runs.
    upgraded_spec = dataclasses.replace(bigger, version="1.37")
    upgrade = asyncio.create_task(provider.ensure(upgraded_spec))
    seen: list[InfraPhase] = []
    while not upgrade.done():
        observed = await provider.observe(wanted.id)
        assert observed is not None
        seen.append(observed.phase)
        await asyncio.sleep(0.05)
    upgraded = await upgrade
    assert InfraPhase.UPDATING in seen
    assert set(seen) <= {InfraPhase.READY, InfraPhase.UPDATING}, seen
    assert (upgraded.phase, upgraded.version, upgraded.kubernetes_version) == (
        InfraPhase.READY,
        "1.37",
        "v1.37.2",
    )
    server = await kubectl_json(config, "version")
    assert server["serverVersion"]["gitVersion"] == "v1.37.2"
    deployment = await kubectl_json(config, "get", "deployment", "web")
    assert deployment["status"].get("readyReplicas") == 3
    kept = await kubectl_json(config, "get", "configmap", "keep")
    assert kept["data"] == {"a": "1"}
    assert operations(provider)["update"] == 2.0

    # Never down, never skipping: refused, and the cluster keeps running 1.37.
    with pytest.raises(PermanentProviderError, match="one minor at a time"):
        await provider.ensure(dataclasses.replace(upgraded_spec, version="1.36"))
    assert (await wait_for(provider, wanted.id, InfraPhase.READY)).version == "1.37"

    # Delete: every process stops, the data goes.
    pids = [process.pid for process in cluster_processes(cluster_dir)]
    assert len(pids) == 5
    assert await provider.delete(wanted.id) is None
    assert await provider.observe(wanted.id) is None
    assert not cluster_dir.exists()
    assert not provider.workdir.own_dir(wanted.id).exists()
    assert [pid for pid in pids if alive(pid)] == []
    assert operations(provider)["delete"] == 1.0
    # Deleting again is a no-op.
    assert await provider.delete(wanted.id) is None
    assert operations(provider)["delete"] == 1.0


def alive(pid: int) -> bool:
    """A process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"
