"""Managed secrets across real `kupe serve` processes and a real OpenBao: the tenant writes its
values with the token `kupe admin issue-openbao-token` gives it; two replicas make each write
into a cluster once; kill -9 in the middle of syncing loses nothing."""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kupe.server.providers.simulated import read_inventory
from tests.conftest import TEMPLATE_DB
from tests.support.openbao import OpenBaoServer
from tests.support.postgres import PostgresHandle
from tests.support.server_process import KUPE, Api, ProcessGroup, process_group, wait_for

pytestmark = pytest.mark.slow
CLUSTERS = ["east", "west"]


def openbao_env(bao: OpenBaoServer) -> dict[str, str]:
    bao.ensure_running()
    return {f"KUPE_{name.upper()}": value for name, value in bao.kupe_credential().items()}


@pytest.fixture
def postgres_url(postgres: PostgresHandle) -> Iterator[str]:
    name = f"s_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name, template=TEMPLATE_DB)
    postgres.drop_database(name)


class Secrets:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.url = api.clusters_url().replace("/clusters", "/secrets")

    def create(self, name: str, path: str) -> httpx.Response:
        body = {
            "name": name,
            "secretPath": path,
            "sync": [{"cluster": c, "namespace": "apps"} for c in CLUSTERS],
        }
        return self.api.client.post(self.url, json=body)

    def phases(self) -> dict[str, str]:
        items = self.api.client.get(self.url).json()["items"]
        return {item["name"]: item["status"]["phase"] for item in items}

    def versions(self, name: str) -> set[int]:
        status = self.api.client.get(f"{self.url}/{name}").json()["status"]
        return {s.get("sourceVersion") for s in status["syncStatuses"]}


def writer_token(group: ProcessGroup, env: dict[str, str]) -> dict[str, Any]:
    """What the operator hands the tenant, through the real command."""
    done = subprocess.run(
        [*KUPE, "admin", "issue-openbao-token", "--tenant", "default", "--hours", "1"],
        env={**group.processes[0].env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    issued: dict[str, Any] = json.loads(done.stdout)
    return issued


def write_value(bao: OpenBaoServer, token: str, mount: str, path: str, **data: str) -> int:
    answer = bao.request("POST", f"{mount}/data/{path}", {"data": data}, token=token)
    assert answer.status_code == 200, answer.text
    version: int = answer.json()["data"]["version"]
    return version


def running_clusters(api: Api) -> None:
    for name in CLUSTERS:
        assert api.create(name).status_code == 201
    wait_for("the clusters Running", lambda: api.all_at("Running", CLUSTERS), timeout=60)


def held_values(cloud: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Every Secret in the simulated clusters: (cluster id, name) -> decoded data."""
    with contextlib.closing(sqlite3.connect(cloud)) as conn:
        rows = conn.execute("SELECT cluster_id, name, data FROM secrets").fetchall()
    return {
        (cluster, name): {k: base64.b64decode(v).decode() for k, v in json.loads(data).items()}
        for cluster, name, data in rows
    }


def copies(group: ProcessGroup) -> Counter[str]:
    return Counter(e.cluster_id for e in group.ledger() if e.operation == "secret-write")


def test_two_replicas_write_each_copy_once_with_the_tenants_own_values(
    tmp_path: Path, postgres_url: str, openbao: OpenBaoServer
) -> None:
    env = {"KUPE_DATABASE_URL": postgres_url, "KUPE_SECRET_RESYNC_SECONDS": "1"}
    env.update(openbao_env(openbao))
    with process_group(tmp_path, env) as group:
        first, second = group.serve("first"), group.serve("second")
        first.wait_ready()
        second.wait_ready()
        key = group.api_key()
        apis = [Api(first.url, key), Api(second.url, key)]
        running_clusters(apis[0])

        issued = writer_token(group, env)
        assert issued["mount"] == "kupe-default"
        assert issued["token"] not in first.log_tail(500) + second.log_tail(500)
        # The tenant's token writes its own mount and nothing else.
        foreign = openbao.request(
            "POST", "kupe-other/data/x", {"data": {"k": "v"}}, token=issued["token"]
        )
        assert foreign.status_code == 403
        names = [f"sec-{i:02d}" for i in range(10)]
        for name in names:
            write_value(openbao, issued["token"], issued["mount"], name, value=f"{name}-v1")
        for index, name in enumerate(names):
            assert Secrets(apis[index % 2]).create(name, name).status_code == 201
        view = Secrets(apis[0])
        wait_for(
            "every secret Active",
            lambda: set(view.phases().values()) == {"Active"} and len(view.phases()) == 10,
            timeout=60,
        )
        assert copies(group) == Counter(
            {cluster_id: len(names) for cluster_id in read_inventory(group.cloud)}
        )

        # A new version is written once per target, by whichever replica looks first.
        newer = write_value(openbao, issued["token"], issued["mount"], "sec-03", value="v2")
        wait_for("the new version synced", lambda: view.versions("sec-03") == {newer}, timeout=30)
        settled = copies(group)
        assert sum(settled.values()) == len(names) * len(CLUSTERS) + len(CLUSTERS)
        time.sleep(3)  # three more resync intervals: a current copy is never written again
        assert copies(group) == settled
        for api in apis:
            api.close()


def test_kill_9_while_syncing_converges(
    tmp_path: Path, database_url: str, openbao: OpenBaoServer
) -> None:
    env = {"KUPE_DATABASE_URL": database_url}
    env.update(openbao_env(openbao))
    with process_group(tmp_path, env) as group:
        server = group.serve().wait_ready()
        api = Api(server.url, group.api_key())
        running_clusters(api)
        issued = writer_token(group, env)
        names = [f"crash-{i:02d}" for i in range(12)]
        for name in names:
            write_value(openbao, issued["token"], issued["mount"], name, value=name)
            assert Secrets(api).create(name, name).status_code == 201
        wait_for("the first copy", lambda: copies(group) or None, every=0.01)
        server.kill()
        server.restart().wait_ready()
        view = Secrets(api)
        wait_for(
            "every secret Active after the restart",
            lambda: set(view.phases().values()) == {"Active"},
            timeout=60,
        )
        assert len(view.phases()) == len(names)
        assert held_values(group.cloud) == {
            (cluster_id, name): {"value": name}
            for cluster_id in read_inventory(group.cloud)
            for name in names
        }
        api.close()
