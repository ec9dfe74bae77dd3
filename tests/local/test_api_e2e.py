"""The whole story through Kupe's API with real control planes: a real `kupe serve` with
KUPE_PROVIDER=local, real kubectl with the kubeconfig Kupe hands out (its exec plugin brings
short-lived tokens checked by Kupe's TokenReview webhook), real kube-apiserver, etcd and kwok; and a
managed secret from a real OpenBao written into the cluster as a real Secret."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kupe.cli.kubeconfig import use_executable
from kupe.core.quantity import parse_cpu, parse_memory, parse_storage
from kupe.server.providers.local.processes import kill_all
from tests.local.support import worker_ports
from tests.support.live_server import KUBECTL_BIN, KUPE_BIN
from tests.support.openbao import OpenBaoServer
from tests.support.server_process import KupeProcess, ProcessGroup, process_group

SETTINGS = {
    "KUPE_PROVIDER": "local",
    "KUPE_RESYNC_SECONDS": "5",  # a dead API server is noticed within seconds
    "KUPE_RECONCILE_POLL_SECONDS": "0.5",
    "KUPE_LOCAL_MAX_CLUSTERS": "2",
    "KUPE_LOCAL_PORT_MIN": str(worker_ports()[0]),
    "KUPE_LOCAL_PORT_MAX": str(worker_ports()[1]),
}


def wait_for(what: str, check: Callable[[], Any], within: float = 120.0) -> Any:
    """Poll until `check` returns something true; fail naming `what` and the last value."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {within}s (last: {last!r})")


class Tenant:
    """The bootstrapped tenant, through its admin key."""

    def __init__(self, server: KupeProcess, key: str) -> None:
        self.server = server
        self.key = key
        self.http = httpx.Client(
            base_url=f"{server.url}/api/v1/tenants/default",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    def cluster(self, name: str) -> dict[str, Any]:
        response = self.http.get(f"/clusters/{name}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def settled(self, name: str) -> dict[str, Any] | None:
        """The cluster once Running with its spec applied, else None."""
        body = self.cluster(name)
        status = body["status"]
        applied = status["observedGeneration"] == body["generation"]
        return body if status["phase"] == "Running" and applied else None


@pytest.fixture
def kupe(
    tmp_path: Path, openbao: OpenBaoServer
) -> Iterator[tuple[ProcessGroup, KupeProcess, Tenant]]:
    openbao.ensure_running()
    vault = {f"KUPE_{name.upper()}": value for name, value in openbao.kupe_credential().items()}
    with process_group(tmp_path, {**SETTINGS, **vault, "KUPE_SECRET_RESYNC_SECONDS": "2"}) as group:
        server = group.serve().wait_ready(timeout=120)
        tenant = Tenant(server, group.api_key())
        try:
            yield group, server, tenant
        finally:
            tenant.http.close()
            server.stop()
            kill_all(group.data_dir)  # a safety net: the test deletes its cluster itself


def kubeconfig(tenant: Tenant, name: str, into: Path) -> Path:
    """The kubeconfig Kupe hands out, its plugin pointed at this kupe (as the CLI does)."""
    response = tenant.http.get(f"/clusters/{name}/kubeconfig", params={"format": "kubeconfig"})
    assert response.status_code == 200, response.text
    document = yaml.safe_load(response.text)
    use_executable(document, str(KUPE_BIN))
    path = into / f"{name}.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def kubectl(config: Path, key: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Real kubectl; its exec plugin finds the Kupe credential in the environment only."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "KUPE_API_KEY": key,
        "KUPE_TENANT": "default",
    }
    return subprocess.run(
        [str(KUBECTL_BIN), "--kubeconfig", str(config), "--request-timeout=20s", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )


def _bytes(quantity: str, parse: Callable[[str], int]) -> int:
    """Kubernetes writes plain byte counts without a unit, which Kupe's API never accepts."""
    return int(quantity) if quantity.isdigit() else parse(quantity)


def node_totals(config: Path, key: str, home: Path) -> tuple[int, int, int]:
    listed = kubectl(config, key, home, "get", "nodes", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    cpu = memory = storage = 0
    for node in json.loads(listed.stdout)["items"]:
        allocatable = node["status"]["allocatable"]
        cpu += parse_cpu(allocatable["cpu"])
        memory += _bytes(allocatable["memory"], parse_memory)
        storage += _bytes(allocatable["ephemeral-storage"], parse_storage)
    return cpu, memory, storage


def processes_of(data_dir: Path, cluster_id: str) -> list[int]:
    """Pids whose command line names this cluster's directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cluster_id in cmdline and str(data_dir) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def apiserver_pid(data_dir: Path, cluster_id: str) -> int:
    pids = [
        pid
        for pid in processes_of(data_dir, cluster_id)
        if "kube-apiserver" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert len(pids) == 1, pids
    return pids[0]


def secret_data(config: Path, key: str, home: Path, name: str) -> dict[str, str] | None:
    """The Secret's decoded data as kubectl shows it, None when there is none."""
    shown = kubectl(config, key, home, "get", "secret", name, "-n", "apps", "-o", "json")
    if shown.returncode != 0:
        assert "notfound" in shown.stderr.lower().replace(" ", ""), shown.stderr
        return None
    data = json.loads(shown.stdout).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def managed_secret(
    group: ProcessGroup, tenant: Tenant, bao: OpenBaoServer, config: Path, home: Path
) -> None:
    """The guide's flow: the tenant writes a value with the OpenBao token the operator issued,
    defines where it goes, polls until Active, and kubectl shows the Secret."""
    issued = subprocess.run(
        [str(KUPE_BIN), "admin", "issue-openbao-token", "--tenant", "default"],
        env=group.processes[0].env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    writer = json.loads(issued.stdout)

    def put(**data: str) -> int:
        path = f"{writer['mount']}/data/db"
        answer = bao.request("POST", path, {"data": data}, token=writer["token"])
        assert answer.status_code == 200, answer.text
        version: int = answer.json()["data"]["version"]
        return version

    put(password="first")
    body = {"name": "db", "secretPath": "db", "sync": [{"cluster": "web", "namespace": "apps"}]}
    assert tenant.http.post("/secrets", json=body).status_code == 201

    def phase() -> str:
        return str(tenant.http.get("/secrets/db").json()["status"]["phase"])

    wait_for("the secret Active", lambda: phase() == "Active", within=60)
    assert secret_data(config, tenant.key, home, "db") == {"password": "first"}
    newer = put(password="second")
    wait_for(
        "the new version in the cluster",
        lambda: secret_data(config, tenant.key, home, "db") == {"password": "second"},
        within=30,
    )
    statuses = tenant.http.get("/secrets/db").json()["status"]["syncStatuses"]
    assert [s["sourceVersion"] for s in statuses] == [newer]
    assert tenant.http.delete("/secrets/db").status_code == 204
    wait_for("the definition gone", lambda: tenant.http.get("/secrets/db").status_code == 404)
    assert secret_data(config, tenant.key, home, "db") is None


def test_a_real_cluster_through_the_api(
    kupe: tuple[ProcessGroup, KupeProcess, Tenant], tmp_path: Path, openbao: OpenBaoServer
) -> None:
    group, server, tenant = kupe
    home = tmp_path / "home"
    home.mkdir()
    versions = httpx.get(f"{server.url}/api/v1/versions").json()["items"]
    assert [v["version"] for v in versions] == ["1.36", "1.37"]  # what the cache holds

    created = tenant.http.post(
        "/clusters",
        json={
            "name": "web",
            "displayName": "Web",
            "type": "shared",
            "version": "1.36",
            "resources": {"cpu": "4", "memory": "8Gi", "storage": "40Gi"},
        },
    )
    assert created.status_code == 201, created.text
    running = wait_for("Running", lambda: tenant.settled("web"))
    status = running["status"]
    assert status["kubernetesVersion"] == "v1.36.3"  # read from the cluster's /version
    assert status["endpoint"].startswith("https://127.0.0.1:")
    [cluster_dir] = (group.data_dir / "local" / "clusters").iterdir()
    cluster_id = cluster_dir.name.removeprefix("kupe-")

    config = kubeconfig(tenant, "web", tmp_path)
    assert tenant.key not in config.read_text()
    assert node_totals(config, tenant.key, home) == (4000, 8 * 2**30, 40 * 2**30)
    made = kubectl(config, tenant.key, home, "create", "deployment", "app", "--image=nginx",
                   "--replicas=2")  # fmt: skip
    assert made.returncode == 0, made.stderr

    def pods_running() -> bool:
        listed = kubectl(config, tenant.key, home, "get", "pods", "-o", "json")
        phases = [pod["status"].get("phase") for pod in json.loads(listed.stdout)["items"]]
        return phases == ["Running", "Running"]

    wait_for("the deployment's pods Running", pods_running)
    managed_secret(group, tenant, openbao, config, home)

    # Resize in place, still Running.
    resized = tenant.http.patch("/clusters/web", json={"resources": {"cpu": "6"}})
    assert resized.status_code == 200, resized.text
    wait_for("the resize applied", lambda: tenant.settled("web"))
    assert node_totals(config, tenant.key, home) == (6000, 8 * 2**30, 40 * 2**30)

    # Upgrade one minor: same data with the next minor's binaries.
    upgraded = tenant.http.patch("/clusters/web", json={"version": "1.37"})
    assert upgraded.status_code == 200, upgraded.text
    after = wait_for("the upgrade applied", lambda: tenant.settled("web"))
    assert after["status"]["kubernetesVersion"] == "v1.37.2"
    kept = kubectl(config, tenant.key, home, "get", "deployment", "app", "-o", "json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["spec"]["replicas"] == 2

    # A readonly key's token can read but not write; revoking the key cuts it off.
    issued = tenant.http.post("/apikeys", json={"displayName": "viewer", "role": "readonly"})
    viewer = issued.json()
    assert kubectl(config, viewer["key"], home, "get", "pods").returncode == 0
    refused = kubectl(config, viewer["key"], home, "create", "configmap", "x")
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()
    assert tenant.http.delete(f"/apikeys/{viewer['id']}").status_code == 204
    # Kupe refuses the token at once; the API server caches answers for 5 s (the webhook's
    # cache TTL, at most 10 s), so kubectl is refused a few seconds later.
    wait_for(
        "the revoked key's token refused",
        lambda: kubectl(config, viewer["key"], home, "get", "pods").returncode != 0,
        within=30,
    )

    # Restarting Kupe neither restarts nor loses the cluster: the provider adopts it.
    pid = apiserver_pid(group.data_dir, cluster_id)
    server.restart().wait_ready(timeout=120)
    assert wait_for("Running after the restart", lambda: tenant.settled("web"))
    assert apiserver_pid(group.data_dir, cluster_id) == pid

    # kill -9 of the API server: Degraded, then brought back to Running.
    degraded = server.metric(
        "kupe_cluster_phase_transitions_total", from_phase="Running", to_phase="Degraded"
    )
    os.kill(pid, signal.SIGKILL)
    wait_for(
        "Degraded recorded",
        lambda: (
            server.metric(
                "kupe_cluster_phase_transitions_total", from_phase="Running", to_phase="Degraded"
            )
            > degraded
        ),
        within=60,
    )
    wait_for("Running again", lambda: tenant.settled("web"), within=120)
    assert apiserver_pid(group.data_dir, cluster_id) != pid
    assert kubectl(config, tenant.key, home, "get", "deployment", "app").returncode == 0

    # Delete: every process of the cluster stops and its data goes.
    assert tenant.http.delete("/clusters/web").status_code == 204
    wait_for("deleted", lambda: tenant.http.get("/clusters/web").status_code == 404)
    wait_for("no process left", lambda: not processes_of(group.data_dir, cluster_id), within=30)
    assert not list(group.data_dir.glob(f"local/clusters/*{cluster_id}*"))
