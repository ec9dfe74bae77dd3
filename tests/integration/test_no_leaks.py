"""Secrets never leak: after a full lifecycle with debug logging, no raw API key, bearer token,
OpenBao token, managed secret value, webhook signing secret or sealing key appears in any log
line, any error body, or any column of any table (nor a webhook secret in any GET); and error
bodies never carry tracebacks, SQL or file paths."""

from __future__ import annotations

import io
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.logs import captured_logs
from tests.support.openbao import OpenBaoServer
from tests.support.webhook_receiver import Receiver, webhook_receiver

SECRET_VALUE = f"value-{secrets.token_hex(12)}"
# Alertmanager credentials: a webhook URL's token, an SMTP password, a URL's password.
HOOK_TOKEN = f"hook{secrets.token_hex(12)}"
SMTP_PASSWORD = f"smtp-{secrets.token_hex(12)}"
URL_PASSWORD = f"pw{secrets.token_hex(12)}"
SEALING_KEY = f"sealing-{secrets.token_hex(24)}"
# OpenBao's service and batch tokens (Kupe's own and the per-tenant readers it creates).
OPENBAO_TOKEN = re.compile(r"\b(?:hv)?[sb]\.[A-Za-z0-9]{20,}")
INTERNALS = re.compile(
    r"Traceback|File \"|\.py\b|/work/|/tmp/|site-packages|sqlalchemy|asyncpg|aiosqlite|"
    r"\bSELECT\b|\bINSERT\b|\bUPDATE\b.*\bSET\b|\bFROM\b\s+\w+\s+WHERE",
    re.IGNORECASE,
)


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[io.StringIO]:
    with captured_logs(tmp_path) as stream:
        yield stream


class Recorder:
    """Every request and response of the lifecycle, for the searches at the end."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def __call__(self, response: httpx.Response) -> None:
        await response.aread()
        self.exchanges.append((response.request, response))


async def _webhooks(kupe: Kupe, acme: TenantCreds, receiver: Receiver) -> list[str]:
    """Hooks with a given, a generated and a rotated secret, and a refused one; returns the
    secrets. A GET never shows one."""
    given = f"whsec_given_{secrets.token_urlsafe(24)}"
    rotated = f"whsec_rotated_{secrets.token_urlsafe(24)}"
    refused = f"whsec_refused_{secrets.token_urlsafe(24)}"
    url = acme.url("/webhooks")
    first = await kupe.client.post(
        url, json={"url": receiver.url, "events": ["*"], "secret": given}, headers=acme.headers
    )
    second = await kupe.client.post(
        url, json={"url": receiver.url, "events": ["cluster.*"]}, headers=acme.headers
    )
    assert first.status_code == second.status_code == 201, first.text
    generated = second.json()["secret"]
    bad = await kupe.client.post(
        url,
        json={"url": receiver.url, "events": ["nope"], "secret": refused},
        headers=acme.headers,
    )
    assert bad.status_code == 400
    rotate = await kupe.client.patch(
        f"{url}/{first.json()['id']}", json={"secret": rotated}, headers=acme.headers
    )
    assert rotate.status_code == 200
    for path in ("", f"/{first.json()['id']}", f"/{second.json()['id']}"):
        shown = (await kupe.client.get(f"{url}{path}", headers=acme.headers)).text
        assert all(s not in shown for s in (given, generated, rotated)), path
    return [given, generated, rotated, refused]


async def _lifecycle(
    kupe: Kupe, bao: OpenBaoServer, stray_tokens: list[str], receiver: Receiver
) -> tuple[list[str], list[str]]:
    """Drive a tenant through everything; returns every raw key and webhook secret it was
    handed."""
    acme = await kupe.tenant("acme", plan="business")
    raw_keys = [acme.key]
    h = acme.headers
    hook_secrets = await _webhooks(kupe, acme, receiver)

    created = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "ci", "role": "admin"}, headers=h
    )
    assert created.status_code == 201, created.text
    ci_key, ci_id = created.json()["key"], created.json()["id"]
    readonly = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "ro", "role": "readonly"}, headers=h
    )
    ro_key = readonly.json()["key"]
    raw_keys += [ci_key, ro_key]
    ci = {"Authorization": f"Bearer {ci_key}"}
    ro = {"Authorization": f"Bearer {ro_key}"}

    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    assert (
        await kupe.client.post(acme.url("/clusters"), json={"x": 1}, headers=ci)
    ).is_client_error
    await kupe.run_for(15)
    patched = await kupe.client.patch(
        acme.url("/clusters/web"), json={"alerts": {"cpu": "80%"}}, headers=ci
    )
    assert patched.status_code == 200, patched.text
    await kupe.client.get(acme.url("/clusters/web/kubeconfig"), headers=ro)
    await kupe.client.get(acme.url("/clusters/web/kubeconfig?format=kubeconfig"), headers=ro)
    assert (await kupe.client.delete(acme.url("/clusters/web"), headers=ro)).status_code == 403
    await kupe.client.post(
        acme.url("/members"), json={"email": "dev@acme.example.com", "role": "readonly"}, headers=h
    )
    await kupe.client.patch(acme.url(), json={"plan": "pro"}, headers=ci)

    # Credentials that must be refused without being repeated anywhere.
    for token in stray_tokens:
        refused = await kupe.client.get(
            acme.url("/clusters"), headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401, refused.text
    await kupe.client.get(acme.url("/clusters"), headers={"Authorization": ci_key})  # no scheme
    await kupe.client.get(acme.url("/clusters"), headers={"Authorization": f"Basic {ci_key}"})

    await _managed_secret(kupe, bao, acme, ci)
    await _alerting(kupe, acme, ci)
    await _billing(kupe, acme, ro)

    assert (await kupe.client.delete(acme.url(f"/apikeys/{ci_id}"), headers=h)).status_code == 204
    revoked = await kupe.client.get(acme.url("/clusters"), headers=ci)
    assert revoked.status_code == 401
    assert (await kupe.client.delete(acme.url("/clusters/web"), headers=h)).status_code == 204
    await kupe.run_for(10)
    assert await kupe.phase(acme, "web") == "<gone>"
    assert len(receiver.received) > 5, "the hooks were delivered to (and signed with the secrets)"
    return raw_keys, hook_secrets


async def _billing(kupe: Kupe, acme: TenantCreds, ro: dict[str, str]) -> None:
    """Invoices and the estimate read with a key, and bad invoice names refused: none of it
    repeats a credential or shows internals (the searches at the end cover these too)."""
    await kupe.step(3600)
    assert (await kupe.client.get(acme.url("/invoices"), headers=ro)).status_code == 200
    month = kupe.clock.now().strftime("%Y-%m")
    got = await kupe.client.get(acme.url(f"/invoices/{month}"), headers=ro)
    assert got.status_code == 200, got.text
    for bad in ("2026-00", "x" * 300, "%00", "1999-12"):
        refused = await kupe.client.get(acme.url(f"/invoices/{bad}"), headers=ro)
        assert refused.status_code in (400, 404), (bad, refused.text)
    tenant = await kupe.client.get(acme.url(), headers=ro)
    assert tenant.json()["status"]["currentUsage"]["stale"] is False


async def _managed_secret(
    kupe: Kupe, bao: OpenBaoServer, acme: TenantCreds, ci: dict[str, str]
) -> None:
    """A value synced into the cluster, a definition that cannot read its value, then both
    cleared and deleted."""
    assert kupe.runtime.vault is not None
    await kupe.runtime.vault.ensure_tenant("acme")
    bao.kv_put("kupe-acme", "db", {"password": SECRET_VALUE})
    for name, path in (("db", "db"), ("missing", "nothing/here")):
        body = {"name": name, "secretPath": path, "sync": [{"cluster": "web", "namespace": "a"}]}
        created = await kupe.client.post(acme.url("/secrets"), json=body, headers=ci)
        assert created.status_code == 201, created.text
    await kupe.step()
    synced = await kupe.client.get(acme.url("/secrets/db"), headers=ci)
    assert synced.json()["status"]["phase"] == "Active", synced.text
    missing = await kupe.client.get(acme.url("/secrets/missing"), headers=ci)
    assert missing.json()["status"]["phase"] == "Degraded"
    for name in ("db", "missing"):
        await kupe.client.patch(acme.url(f"/secrets/{name}"), json={"sync": []}, headers=ci)
        await kupe.step()
        await kupe.client.delete(acme.url(f"/secrets/{name}"), headers=ci)
    await kupe.step()


async def _alerting(kupe: Kupe, acme: TenantCreds, ci: dict[str, str]) -> None:
    """Receivers and a global section with credentials: stored, pushed, refused, deleted."""
    hook = {"webhook_configs": [{"url": f"https://hooks.example.com/{HOOK_TOKEN}"}]}
    stored = await kupe.client.put(acme.url("/alertmanager/receivers/ops"), json=hook, headers=ci)
    assert stored.status_code == 200, stored.text
    glob = {"smtp_auth_password": SMTP_PASSWORD, "smtp_smarthost": "smtp.example.com:587"}
    assert (
        await kupe.client.put(acme.url("/alertmanager/global"), json=glob, headers=ci)
    ).status_code == 200
    routes = {"items": [{"receiver": "ops", "matchers": ['severity="critical"']}]}
    assert (
        await kupe.client.put(acme.url("/alertmanager/routes"), json=routes, headers=ci)
    ).status_code == 200
    await kupe.step()
    for refused_body in (
        {"webhook_configs": [{"url": f"ftp://u:{URL_PASSWORD}@h/{HOOK_TOKEN}", "max_alerts": -1}]},
        {"webhook_configs": [{"url": f"ftp://u:{URL_PASSWORD}@h/{HOOK_TOKEN}"}]},
        {"email_configs": [{"to": "a@b.c", "auth_password": SMTP_PASSWORD, "smarthost": "x"}]},
    ):
        refused = await kupe.client.put(
            acme.url("/alertmanager/receivers/bad"), json=refused_body, headers=ci
        )
        assert refused.status_code == 400, refused.text
    for path in ("receivers", "receivers/ops", "routes", "global", "config"):
        assert (await kupe.client.get(acme.url(f"/alertmanager/{path}"), headers=ci)).is_success
    await kupe.client.put(acme.url("/alertmanager/routes"), json={"items": None}, headers=ci)
    await kupe.client.delete(acme.url("/alertmanager/receivers/ops"), headers=ci)
    await kupe.step()


async def _dump_database(kupe: Kupe) -> list[str]:
    """Every value of every column of every table, as text."""

    def reflect(connection: sa.Connection) -> sa.MetaData:
        metadata = sa.MetaData()
        metadata.reflect(connection)
        return metadata

    values: list[str] = []
    async with kupe.runtime.db.engine.connect() as connection:
        metadata = await connection.run_sync(reflect)
        assert len(metadata.tables) >= 3, metadata.tables
        for table in metadata.sorted_tables:
            result = await connection.execute(sa.select(table))
            for row in result:
                values.extend(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
    return values


async def _events_and_key_hashes(kupe: Kupe) -> tuple[list[tuple[object, ...]], list[str]]:
    """The outbox's rows (kind first), and the stored hashes of the API keys still kept."""
    async with kupe.runtime.db.engine.connect() as connection:
        events = await connection.execute(
            sa.text("SELECT kind, name, object, actor, message FROM events")
        )
        rows = [tuple(row) for row in events]
        hashes = await connection.execute(sa.text("SELECT key_hash FROM api_keys"))
        return rows, [str(row[0]) for row in hashes]


def _secret_parts(token: str) -> list[str]:
    """The token and, for a Kupe key, its secret part on its own."""
    parts = [token]
    pieces = token.split("_", 2)
    if token.startswith("kupe_") and len(pieces) == 3:
        parts.append(pieces[2])
    return parts


async def test_no_secret_appears_in_logs_errors_or_the_database(
    tmp_path: Path, database_url: str, debug_log: io.StringIO, openbao: OpenBaoServer
) -> None:
    openbao.ensure_running()
    bao_token = openbao.kupe_token()
    stray_tokens = [
        f"kupe_abcdefgh_{secrets.token_urlsafe(32)}",  # well-formed but unknown
        f"kupe_{secrets.token_urlsafe(40)}",  # malformed key
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0." + secrets.token_urlsafe(16),  # a JWT
        secrets.token_hex(24),
    ]
    recorder = Recorder()
    settings = test_settings(
        tmp_path,
        database_url,
        log_level="debug",
        openbao_addr=openbao.address,
        openbao_token=bao_token,
        alerting={"backend": "none"},
        webhook_allow_private=True,
        webhooks={"sealing_key": SEALING_KEY},
    )
    with webhook_receiver() as receiver:
        async with running_kupe(settings) as kupe:
            kupe.client.event_hooks["response"].append(recorder)
            raw_keys, hook_secrets = await _lifecycle(kupe, openbao, stray_tokens, receiver)
            database = await _dump_database(kupe)
            outbox, key_hashes = await _events_and_key_hashes(kupe)

    log_text = debug_log.getvalue()
    events = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "request" for e in events), "debug logging was not captured"
    assert any(e.get("level") == "debug" for e in events) or log_text.count("\n") > 20
    errors = [(req, res) for req, res in recorder.exchanges if res.status_code >= 400]
    assert len(errors) >= 6
    error_text = "\n".join(res.text for _req, res in errors)
    database_text = "\n".join(database)
    assert len(database) > 50
    # The searches look in the right places: the key ids are stored and the requests logged.
    assert raw_keys[1].split("_")[1] in database_text
    assert "/api/v1/tenants/acme/apikeys" in log_text
    needles = [part for token in raw_keys + stray_tokens for part in _secret_parts(token)]
    needles += [SECRET_VALUE, bao_token, HOOK_TOKEN, SMTP_PASSWORD, URL_PASSWORD]
    every_body = "\n".join(res.text for _req, res in recorder.exchanges)
    for needle in (HOOK_TOKEN, SMTP_PASSWORD, URL_PASSWORD):
        assert needle not in every_body, "an alerting credential reached a response"
    needles += [SECRET_VALUE, bao_token, SEALING_KEY, *hook_secrets]
    for where, text in (("logs", log_text), ("errors", error_text), ("db", database_text)):
        assert OPENBAO_TOKEN.search(text) is None, f"an OpenBao token reached the {where}"
    # The outbox holds every kind's changes, and no key hash (nor, above, a raw key or value).
    assert {"cluster", "apikey", "member", "tenant", "secret"} <= {row[0] for row in outbox}
    outbox_text = "\n".join(str(value) for row in outbox for value in row)
    assert key_hashes
    for key_hash in key_hashes:
        assert key_hash not in outbox_text, "an API key's hash reached the events"
    assert "keyHash" not in outbox_text
    for needle in needles:
        assert needle not in outbox_text, "a credential reached the events"
        assert needle not in log_text, "a credential reached the logs"
        assert needle not in error_text, "a credential reached an error body"
        assert needle not in database_text, "a credential reached the database"
    for request, response in errors:
        body = response.json()
        assert set(body) <= {"error", "code", "field"}, body
        leaked = INTERNALS.search(response.text)
        assert leaked is None, f"{request.method} {request.url}: {response.text}"
