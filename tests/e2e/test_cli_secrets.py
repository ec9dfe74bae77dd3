"""`kupe secrets` from the terminal against a real `kupe serve` and a real OpenBao: the value is
written with the token `kupe admin issue-openbao-token` hands out, `create --wait` returns once
it is Active, `update --clear` and `delete --wait` remove the copies."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import KUPE_BIN, LiveKupe, clean_environ, live_kupe
from tests.support.openbao import OpenBaoServer
from tests.support.server_process import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path, openbao: OpenBaoServer) -> Iterator[tuple[LiveKupe, dict[str, str]]]:
    openbao.ensure_running()
    vault = {f"KUPE_{k.upper()}": v for k, v in openbao.kupe_credential().items()}
    (tmp_path / "server").mkdir()
    with live_kupe(tmp_path / "server", {**vault, "KUPE_SECRET_RESYNC_SECONDS": "1"}) as live:
        yield live, vault


def kupe(live: LiveKupe, home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUPE_BIN), *args],
        env=live.client_env(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def test_secrets_from_the_cli(
    served: tuple[LiveKupe, dict[str, str]], openbao: OpenBaoServer, tmp_path: Path
) -> None:
    live, vault = served
    home = tmp_path / "home"
    home.mkdir()
    api = httpx.Client(
        base_url=f"{live.url}/api/v1/tenants/default",
        headers={"Authorization": f"Bearer {live.key}"},
    )
    body = {"name": "web", "displayName": "Web", "type": "shared"}
    assert api.post("/clusters", json=body).status_code == 201

    # The operator issues the tenant's writer token; the tenant writes its value with it.
    operator = subprocess.run(
        [str(KUPE_BIN), "admin", "issue-openbao-token", "--tenant", "default", "--hours", "1"],
        env=clean_environ(KUPE_DATA_DIR=str(live.data_dir), **vault),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    issued = as_json(operator)
    assert issued["policies"] == ["kupe-default-write"]
    answer = openbao.request(
        "POST", "kupe-default/data/db", {"data": {"password": "pw"}}, token=issued["token"]
    )
    assert answer.status_code == 200, answer.text
    wait_for("web Running", lambda: api.get("/clusters/web").json()["status"]["phase"] == "Running")

    created = as_json(
        kupe(live, home, "secrets", "create", "db", "--path", "db", "--target", "web/apps",
             "--target", "web/jobs/db-creds", "--wait", "--timeout", "60", "-o", "json")
    )  # fmt: skip
    assert created["status"]["phase"] == "Active"
    statuses = created["status"]["syncStatuses"]
    assert [(s["namespace"], s["secretName"], s["phase"]) for s in statuses] == [
        ("apps", "db", "Synced"),
        ("jobs", "db-creds", "Synced"),
    ]
    assert "pw" not in json.dumps(created["status"])

    table = kupe(live, home, "secrets", "list")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if " db " in f" {line} ")
    assert "2/2" in row
    assert "Active" in row

    fewer = as_json(
        kupe(live, home, "secrets", "update", "db", "--target", "web/apps", "--wait", "-o", "json")
    )
    assert fewer["sync"] == [{"cluster": "web", "namespace": "apps"}]
    assert fewer["status"]["phase"] == "Active"
    cleared = as_json(
        kupe(live, home, "secrets", "update", "db", "--clear", "--wait", "-o", "json")
    )
    assert cleared["sync"] == []
    assert cleared["status"]["syncStatuses"] == []

    # Bad input: a clear message and a non-zero exit; nothing recorded.
    escaping = kupe(live, home, "secrets", "create", "bad", "--path", "../kupe-other/db")
    assert escaping.returncode != 0
    assert "secretPath" in escaping.stderr
    malformed = kupe(live, home, "secrets", "create", "bad", "--path", "db", "--target", "web")
    assert malformed.returncode == 2
    assert "CLUSTER/NAMESPACE" in malformed.stderr
    neither = kupe(live, home, "secrets", "update", "db")
    assert neither.returncode == 2

    gone = kupe(live, home, "secrets", "delete", "db", "--yes", "--wait", "--timeout", "60")
    assert gone.returncode == 0, gone.stderr
    missing = kupe(live, home, "secrets", "get", "db")
    assert missing.returncode != 0
    assert "not found" in missing.stderr.lower()
    assert [
        s["name"] for s in as_json(kupe(live, home, "secrets", "list", "-o", "json"))["items"]
    ] == []
    api.close()
