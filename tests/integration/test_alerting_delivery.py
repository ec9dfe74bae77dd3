"""Delivered for real: the embedded backend runs a real Alertmanager (v0.28.1) on loopback; an
alert posted to its API for one tenant reaches that tenant's webhook receiver (a real HTTP
server on 127.0.0.1) and never another tenant's; a restarted Kupe serves the same."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from kupe.server.alertmanager.embedded import EmbeddedAlertmanager
from kupe.server.alertmanager.install import install_alertmanager
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings

CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")
DEADLINE = 30.0


class Hooks:
    """A webhook receiver: every notification Alertmanager posts, by path."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                with hooks.lock:
                    hooks.received.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def alerts(self, path: str) -> list[dict[str, str]]:
        """The labels of every alert notified at `path`."""
        with self.lock:
            return [a["labels"] for n in self.received.get(path, []) for a in n["alerts"]]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    found = Hooks()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture(scope="module")
def alertmanager_cache() -> Path:
    install_alertmanager(CACHE_DIR)
    return CACHE_DIR


def settings_for(tmp_path: Path, database_url: str, cache: Path) -> Any:
    return test_settings(
        tmp_path,
        database_url,
        alerting={
            "backend": "embedded",
            "cache_dir": cache,
            "embedded_port": 0,
        },
        webhook_allow_private=True,
    )


async def configure(kupe: Kupe, creds: TenantCreds, hook_url: str) -> None:
    receiver = {"webhook_configs": [{"url": f"{hook_url}/{creds.name}", "send_resolved": False}]}
    route = {"receiver": "oncall", "matchers": ['severity="critical"'], "group_wait": "1s"}
    put = await kupe.client.put(
        creds.url("/alertmanager/receivers/oncall"), json=receiver, headers=creds.headers
    )
    assert put.status_code == 200, put.text
    routed = await kupe.client.put(
        creds.url("/alertmanager/routes"), json={"items": [route]}, headers=creds.headers
    )
    assert routed.status_code == 200, routed.text


async def post_alert(url: str, **labels: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/api/v2/alerts", json=[{"labels": {"alertname": "KupeTest", **labels}}]
        )
    assert response.status_code == 200, response.text


async def wait_for(hooks: Hooks, path: str) -> list[dict[str, str]]:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = hooks.alerts(path)
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no notification at {path} within {DEADLINE}s")


def embedded(kupe: Kupe) -> EmbeddedAlertmanager:
    backend = kupe.runtime.alert_backend
    assert isinstance(backend, EmbeddedAlertmanager)
    return backend


async def test_alerts_reach_their_tenants_receiver_only(
    database_url: str, tmp_path: Path, alertmanager_cache: Path, hooks: Hooks
) -> None:
    async with running_kupe(settings_for(tmp_path, database_url, alertmanager_cache)) as kupe:
        acme, other = await kupe.tenant("acme"), await kupe.tenant("other")
        await configure(kupe, acme, hooks.url)
        await configure(kupe, other, hooks.url)
        await kupe.step()
        am = embedded(kupe)
        assert oct(am.config_file.stat().st_mode & 0o777) == "0o600"
        assert oct(am.directory.stat().st_mode & 0o777) == "0o700"

        await post_alert(am.url, tenant="acme", severity="critical", instance="a1")
        await post_alert(am.url, tenant="other", severity="critical", instance="o1")
        assert await wait_for(hooks, "/acme") == [
            {"alertname": "KupeTest", "tenant": "acme", "severity": "critical", "instance": "a1"}
        ]
        got_other = await wait_for(hooks, "/other")
        assert {labels["tenant"] for labels in got_other} == {"other"}
        # Each receiver saw only its own tenant's alerts.
        assert {labels["tenant"] for labels in hooks.alerts("/acme")} == {"acme"}

        # The backend caught up with what was written: the config says so.
        async with kupe.runtime.db.read() as session:
            rows = (
                await session.execute(
                    text(
                        "SELECT generation, observed_generation, push_error "
                        "FROM alertmanager_configs"
                    )
                )
            ).all()
        assert all(g == o and e is None for g, o, e in rows), rows


async def test_a_restarted_kupe_serves_the_delivered_configuration(
    database_url: str, tmp_path: Path, alertmanager_cache: Path, hooks: Hooks
) -> None:
    settings = settings_for(tmp_path, database_url, alertmanager_cache)
    async with running_kupe(settings) as kupe:
        acme = await kupe.tenant("acme")
        await configure(kupe, acme, hooks.url)
        await kupe.step()
    # Stopped with Kupe; the next process that reconciles runs it again on what was pushed.
    async with running_kupe(settings) as kupe:
        am = embedded(kupe)
        await am.start()
        await post_alert(am.url, tenant="acme", severity="critical")
        assert {labels["tenant"] for labels in await wait_for(hooks, "/acme")} == {"acme"}


async def test_accepted_writes_survive_a_crash_and_a_leftover_alertmanager_is_replaced(
    database_url: str, tmp_path: Path, alertmanager_cache: Path, hooks: Hooks
) -> None:
    settings = settings_for(tmp_path, database_url, alertmanager_cache)
    async with running_kupe(settings) as kupe:
        acme, other = await kupe.tenant("acme"), await kupe.tenant("other")
        await configure(kupe, acme, hooks.url)
        await kupe.step()
        am = embedded(kupe)
        # Accepted (committed), then Kupe goes away before any pass pushes it.
        await configure(kupe, other, hooks.url)
    # What a killed Kupe leaves behind: its Alertmanager, still running on that directory.
    leftover = subprocess.Popen(  # noqa: ASYNC220 - a stand-in, started once
        [
            str(am.binary),
            f"--config.file={am.config_file}",
            f"--storage.path={tmp_path / 'leftover'}",
            "--web.listen-address=127.0.0.1:0",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (am.directory / "alertmanager.pid").write_text(str(leftover.pid))
        async with running_kupe(settings) as kupe:
            again = embedded(kupe)
            await again.start()
            assert leftover.wait(timeout=10) is not None  # stopped, replaced
            await kupe.step()  # the accepted write is still due: delivered now
            await post_alert(again.url, tenant="other", severity="critical")
            assert {labels["tenant"] for labels in await wait_for(hooks, "/other")} == {"other"}
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


async def test_a_removed_tenant_is_taken_out_of_the_alertmanager(
    database_url: str, tmp_path: Path, alertmanager_cache: Path, hooks: Hooks
) -> None:
    async with running_kupe(settings_for(tmp_path, database_url, alertmanager_cache)) as kupe:
        acme, other = await kupe.tenant("acme"), await kupe.tenant("other")
        await configure(kupe, acme, hooks.url)
        await configure(kupe, other, hooks.url)
        await kupe.step()
        am = embedded(kupe)
        assert "acme/oncall" in am.config_file.read_text()
        lifecycle = kupe.runtime.services.lifecycle
        async with kupe.runtime.db.write() as session:
            tenant = await kupe.runtime.services.tenants.tenant(session, "acme")
            await lifecycle.begin_deletion(session, tenant, cascade=True)
        await kupe.step(kupe.runtime.settings.alerting.resync_seconds + 1)
        await kupe.step(kupe.runtime.settings.alerting.resync_seconds + 1)
        served = am.config_file.read_text()
        assert "acme/" not in served
        assert "other/oncall" in served
        async with kupe.runtime.db.read() as session:
            removed = (
                await session.execute(
                    text(
                        "SELECT t.name, c.removed_at IS NOT NULL FROM alertmanager_configs c "
                        "JOIN tenants t ON t.id = c.tenant_id"
                    )
                )
            ).all()
        assert sorted(removed) == [("acme", True), ("other", False)]
        # Alertmanager serves the new configuration: other's alerts still arrive.
        await post_alert(am.url, tenant="other", severity="critical")
        assert {labels["tenant"] for labels in await wait_for(hooks, "/other")} == {"other"}


class MimirStandIn:
    """Records what Kupe sends to a Mimir Alertmanager configuration API. No Mimir runs here:
    this checks Kupe's requests against Mimir's documented API, not Mimir's answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                stand_in.requests.append(
                    (self.command, self.path, self.headers.get("X-Scope-OrgID"), body)
                )
                self.send_response(201 if self.command == "POST" else 200)
                self.end_headers()

            do_POST = _record
            do_DELETE = _record

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


async def test_mimir_backend_sends_each_tenant_its_configuration(
    database_url: str, tmp_path: Path, alertmanager_cache: Path
) -> None:

    mimir = MimirStandIn()
    thread = threading.Thread(target=mimir.server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = test_settings(
            tmp_path,
            database_url,
            alerting={"backend": "mimir", "mimir_url": mimir.url, "cache_dir": alertmanager_cache},
        )
        async with running_kupe(settings) as kupe:
            acme = await kupe.tenant("acme")
            body = {"webhook_configs": [{"url": "https://hooks.example.com/acme-t0ken"}]}
            put = await kupe.client.put(
                acme.url("/alertmanager/receivers/oncall"), json=body, headers=acme.headers
            )
            assert put.status_code == 200
            await kupe.step()
        method, path, org, sent = mimir.requests[-1]
        assert (method, path, org) == ("POST", "/api/v1/alerts", "acme")
        document = yaml.safe_load(sent)
        assert document["template_files"] == {}
        config = yaml.safe_load(document["alertmanager_config"])
        assert config["route"]["receiver"] == "kupe-default"
        assert config["receivers"][1] == {"name": "oncall", **body}
    finally:
        mimir.server.shutdown()
        mimir.server.server_close()


async def test_tenant_globals_are_written_into_their_own_integrations(
    database_url: str, tmp_path: Path, alertmanager_cache: Path
) -> None:
    async with running_kupe(settings_for(tmp_path, database_url, alertmanager_cache)) as kupe:
        acme, other = await kupe.tenant("acme"), await kupe.tenant("other")
        glob = {
            "slack_api_url": "https://hooks.slack.com/services/T/B/acme",
            "smtp_smarthost": "smtp.acme.example:587",
            "smtp_from": "alerts@acme.example",
            "http_config": {"follow_redirects": False},
        }
        answers = [
            await kupe.client.put(
                acme.url("/alertmanager/global"), json=glob, headers=acme.headers
            ),
            await kupe.client.put(
                acme.url("/alertmanager/receivers/chat"),
                json={"slack_configs": [{"channel": "#ops"}]},
                headers=acme.headers,
            ),
            await kupe.client.put(
                acme.url("/alertmanager/receivers/mail"),
                json={"email_configs": [{"to": "ops@acme.example"}]},
                headers=acme.headers,
            ),
        ]
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
        await configure(kupe, other, "https://hooks.example.com")
        await kupe.step()
        served = yaml.safe_load(embedded(kupe).config_file.read_text())
        receivers = {r["name"]: r for r in served["receivers"]}
        chat = receivers["acme/chat"]["slack_configs"][0]
        assert chat["api_url"] == glob["slack_api_url"]
        assert chat["http_config"] == {"follow_redirects": False}
        mail = receivers["acme/mail"]["email_configs"][0]
        assert (mail["smarthost"], mail["from"]) == ("smtp.acme.example:587", "alerts@acme.example")
        assert "http_config" not in mail
        # Another tenant's integrations get none of acme's globals.
        assert "http_config" not in receivers["other/oncall"]["webhook_configs"][0]
        async with kupe.runtime.db.read() as session:
            errors = (
                await session.execute(text("SELECT push_error FROM alertmanager_configs"))
            ).all()
        assert errors == [(None,), (None,)]


async def test_two_replicas_push_each_change_once(
    database_url: str, tmp_path: Path, alertmanager_cache: Path
) -> None:
    mimir = MimirStandIn()
    thread = threading.Thread(target=mimir.server.serve_forever, daemon=True)
    thread.start()
    try:
        alerting = {
            "backend": "mimir",
            "mimir_url": mimir.url,
            "cache_dir": alertmanager_cache,
            "secret_key": "C" * 43 + "=",  # replicas share the server key
        }
        first = test_settings(tmp_path / "a", database_url, alerting=alerting)
        second = test_settings(tmp_path / "b", database_url, alerting=alerting)
        async with running_kupe(first) as one, running_kupe(second, one.clock) as two:
            acme = await one.tenant("acme")
            body = {"webhook_configs": [{"url": "https://hooks.example.com/acme"}]}
            put = await two.client.put(
                acme.url("/alertmanager/receivers/oncall"), json=body, headers=acme.headers
            )
            assert put.status_code == 200
            await asyncio.gather(one.step(), two.step(), one.step(), two.step())
            posts = [r for r in mimir.requests if r[0] == "POST"]
            assert [(path, org) for _m, path, org, _b in posts] == [("/api/v1/alerts", "acme")]
            # The replica that did not push reads the same documents (one key for both).
            fetched = await one.client.get(
                acme.url("/alertmanager/receivers/oncall"), headers=acme.headers
            )
            assert fetched.status_code == 200
    finally:
        mimir.server.shutdown()
        mimir.server.server_close()
