"""`kupe webhooks` from the terminal against a real `kupe serve` whose own reconciler delivers
to a real receiver on loopback: create prints the secret once, the receiver gets the cluster's
events signed with it, `deliveries` shows the attempts, `delete` removes the hook."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kupe.sdk.webhooks import verify
from tests.support.live_server import KUPE_BIN, LiveKupe, live_kupe
from tests.support.server_process import wait_for
from tests.support.webhook_receiver import Receiver, webhook_receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveKupe, Receiver]]:
    (tmp_path / "server").mkdir()
    with (
        webhook_receiver() as receiver,
        live_kupe(tmp_path / "server", {"KUPE_WEBHOOK_ALLOW_PRIVATE": "true"}) as live,
    ):
        yield live, receiver


def kupe(live: LiveKupe, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUPE_BIN), *args],
        env=live.client_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_webhooks_from_the_cli(served: tuple[LiveKupe, Receiver], tmp_path: Path) -> None:
    live, receiver = served
    home = tmp_path / "home"
    home.mkdir()
    created = as_json(
        kupe(live, home, "webhooks", "create", receiver.url, "--event", "cluster.*", "-o", "json")
    )
    secret, hook = created["secret"], created["id"]
    assert secret.startswith("whsec_")
    listed = kupe(live, home, "webhooks", "list", "-o", "json")
    assert [h["id"] for h in as_json(listed)["items"]] == [hook]
    assert secret not in listed.stdout
    assert secret not in live.log()

    api = httpx.Client(
        base_url=f"{live.url}/api/v1/tenants/default",
        headers={"Authorization": f"Bearer {live.key}"},
    )
    body = {"name": "web", "displayName": "Web", "type": "shared"}
    assert api.post("/clusters", json=body).status_code == 201

    def running() -> list[dict[str, Any]] | None:
        events = [verify(secret, r.headers, r.body) for r in list(receiver.received)]
        return events if any(e.get("reason") == "Running" for e in events) else None

    events = wait_for("the Running event delivered", running, timeout=60)
    assert events[0]["type"] == "cluster.created"
    assert events[0]["object"]["name"] == "web"
    assert len({e["id"] for e in events}) == len(events)
    signed_at = int(receiver.received[0].headers["Kupe-Signature"].split(",")[0][2:])
    assert abs(time.time() - signed_at) < 120  # the server's real clock

    table = kupe(live, home, "webhooks", "deliveries", hook)
    assert table.returncode == 0, table.stderr
    assert "cluster.created" in table.stdout
    attempts = as_json(kupe(live, home, "webhooks", "deliveries", hook, "-o", "json"))["items"]
    assert len(attempts) >= len(events)
    assert all(a["delivered"] for a in attempts)

    deleted = kupe(live, home, "webhooks", "delete", hook, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert as_json(kupe(live, home, "webhooks", "list", "-o", "json"))["items"] == []

    trail = as_json(kupe(live, home, "audit", "list", "--target", f"webhooks/{hook}", "-o", "json"))
    assert [(e["method"], e["status"]) for e in trail["items"]] == [("DELETE", 204), ("POST", 201)]
    table = kupe(live, home, "audit", "list")
    assert table.returncode == 0, table.stderr
    assert "clusters/web" in table.stdout
    api.close()
