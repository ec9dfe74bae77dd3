"""Dead processes make a cluster UNHEALTHY and ensure brings them back; a new provider (a
restarted Kupe) adopts running clusters without touching them."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

from kupe.server.providers.base import ClusterSpec, InfraPhase
from kupe.server.providers.local.processes import (
    COMPONENTS,
    cluster_processes,
    component_pid,
    kill_all,
)
from kupe.server.providers.local.provider import LocalProvider
from tests.local.support import admin_kubeconfig, kubectl, kubectl_json, spec, wait_for
from tests.local.test_lifecycle import alive, operations


async def test_kill_9_of_the_api_server_degrades_and_ensure_restarts_it(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
    tmp_path: Path,
) -> None:
    provider = make_provider()
    wanted = spec()
    cleanup.append((provider, wanted.id))
    await provider.ensure(wanted)
    state = await wait_for(provider, wanted.id, InfraPhase.READY)
    cluster_dir = provider.workdir.cluster_dir(wanted.id)
    config = admin_kubeconfig(cluster_dir, state.endpoint, tmp_path)
    assert (await kubectl(config, "create", "configmap", "survivor")).code == 0

    apiserver = component_pid(cluster_dir, "kube-apiserver")
    assert apiserver is not None
    os.kill(apiserver, signal.SIGKILL)
    await gone(apiserver)
    degraded = await provider.observe(wanted.id)
    assert degraded is not None
    assert degraded.phase is InfraPhase.UNHEALTHY
    assert "kube-apiserver" in degraded.message
    assert degraded.endpoint == state.endpoint  # still known while it is down

    healed = await provider.ensure(wanted)
    assert healed.phase is InfraPhase.READY
    restarted = component_pid(cluster_dir, "kube-apiserver")
    assert restarted is not None
    assert restarted != apiserver
    assert (await kubectl_json(config, "get", "configmap", "survivor"))["metadata"]["name"]
    assert operations(provider) == {"create": 1.0, "update": 1.0}

    # As after a reboot: nothing of the cluster runs, its pid files are stale.
    for pid in kill_all(cluster_dir):
        await gone(pid)
    # ... and, as after a reboot, a pid file now names someone else's live process.
    stranger = await asyncio.create_subprocess_exec("sleep", "120")
    try:
        (cluster_dir / "pids" / "kube-apiserver.pid").write_text(str(stranger.pid))
        await _reboot_checks(provider, wanted, cluster_dir, config)
        assert alive(stranger.pid)  # neither killed nor taken for the API server
    finally:
        stranger.kill()
        await stranger.wait()


async def _reboot_checks(
    provider: LocalProvider, wanted: ClusterSpec, cluster_dir: Path, config: Path
) -> None:
    down = await provider.observe(wanted.id)
    assert down is not None
    assert down.phase is InfraPhase.UNHEALTHY
    assert all(name in down.message for name in COMPONENTS)
    assert (await provider.ensure(wanted)).phase is InfraPhase.READY
    assert {p.name for p in cluster_processes(cluster_dir)} == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok-controller",
    }
    assert (await kubectl_json(config, "get", "configmap", "survivor"))["metadata"]["name"]


async def gone(pid: int) -> None:
    """Wait until a killed process is no more (a zombie counts as gone)."""
    for _ in range(100):
        if not alive(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} still alive")


async def test_a_restarted_kupe_adopts_running_clusters_without_touching_them(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
) -> None:
    first = make_provider()
    wanted = spec()
    cleanup.append((first, wanted.id))
    created = await first.ensure(wanted)
    cluster_dir = first.workdir.cluster_dir(wanted.id)
    pids = {p.pid for p in cluster_processes(cluster_dir)}
    await first.aclose()

    restarted = make_provider()  # knows nothing but the workdir
    adopted = await restarted.observe(wanted.id)
    assert adopted is not None
    assert adopted.phase is InfraPhase.READY
    assert (adopted.endpoint, adopted.ca_certificate) == (created.endpoint, created.ca_certificate)
    assert adopted.matches(wanted)
    again = await restarted.ensure(wanted)
    assert again.phase is InfraPhase.READY
    assert {p.pid for p in cluster_processes(cluster_dir)} == pids
    assert operations(restarted) == {}
