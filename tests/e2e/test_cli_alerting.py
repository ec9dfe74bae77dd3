"""`kupe alerting` from the terminal against a real `kupe serve` with the embedded backend:
receivers and routes from YAML files, credentials masked in what comes back, and an alert
posted to the installation's Alertmanager reaching the webhook the CLI configured."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kupe.server.alertmanager.install import install_alertmanager
from tests.integration.test_alerting_delivery import Hooks
from tests.support.live_server import KUPE_BIN, LiveKupe, live_kupe

pytestmark = pytest.mark.slow
CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    found = Hooks()
    threading.Thread(target=found.server.serve_forever, daemon=True).start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveKupe, int]]:
    install_alertmanager(CACHE_DIR)
    port = free_port()
    settings = {
        "KUPE_ALERTING__BACKEND": "embedded",
        "KUPE_ALERTING__CACHE_DIR": str(CACHE_DIR),
        "KUPE_ALERTING__EMBEDDED_PORT": str(port),
        "KUPE_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    (tmp_path / "server").mkdir()
    with live_kupe(tmp_path / "server", settings) as live:
        yield live, port


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


def test_alerting_from_the_cli(served: tuple[LiveKupe, int], hooks: Hooks, tmp_path: Path) -> None:
    live, port = served
    home = tmp_path / "home"
    home.mkdir()
    receiver = tmp_path / "oncall.yaml"
    receiver.write_text(f"webhook_configs:\n  - url: {hooks.url}/default\n")
    route = tmp_path / "routes.yaml"
    route.write_text(
        "- receiver: oncall\n  matchers: ['severity=\"critical\"']\n  group_wait: 1s\n"
    )
    put = as_json(
        kupe(
            live, home, "alerting", "receivers", "put", "oncall", "-f", str(receiver), "-o", "json"
        )
    )
    assert put == {"name": "oncall", "webhook_configs": [{"url": "<secret>"}]}
    routed = as_json(kupe(live, home, "alerting", "routes", "put", "-f", str(route), "-o", "json"))
    assert routed["items"][0]["receiver"] == "oncall"
    listed = kupe(live, home, "alerting", "receivers", "list")
    assert listed.returncode == 0
    assert "oncall" in listed.stdout
    assert "webhook" in listed.stdout
    shown = kupe(live, home, "alerting", "config")
    assert shown.returncode == 0
    assert hooks.url not in shown.stdout
    assert "<secret>" in shown.stdout
    in_use = kupe(live, home, "alerting", "receivers", "delete", "oncall", "--yes")
    assert in_use.returncode != 0
    assert "route" in in_use.stderr

    # The server's reconciler delivers it; the alert reaches the webhook.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not hooks.alerts("/default"):
        with contextlib.suppress(httpx.HTTPError):  # not started yet
            httpx.post(
                f"http://127.0.0.1:{port}/api/v2/alerts",
                json=[
                    {"labels": {"alertname": "Cli", "tenant": "default", "severity": "critical"}}
                ],
                timeout=2,
            )
        time.sleep(0.5)
    assert {labels["tenant"] for labels in hooks.alerts("/default")} == {"default"}
