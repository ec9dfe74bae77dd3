"""Alertmanager configuration (API §9) on SQLite and PostgreSQL, every write checked by the real
`amtool check-config` (v0.28.1): receivers, routes, global, masking and the `"<secret>"`
round-trip, ETags and If-Match, the plan's receiver cap, roles, and nothing in the clear at
rest."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kupe.server.alertmanager.binaries import find_binaries
from kupe.server.alertmanager.install import install_alertmanager
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings

CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")
HOOK = "https://hooks.example.com/services/T000/B000/tok3n-a1b2c3"
SLACK = "https://hooks.slack.com/services/T111/B111/s1ack-secret-xyz"
RECEIVER = {"webhook_configs": [{"url": HOOK, "send_resolved": True}]}


@pytest.fixture(scope="module")
def alertmanager_cache() -> Path:
    """The Alertmanager binaries, installed through the install code (built if missing)."""
    install_alertmanager(CACHE_DIR)
    return CACHE_DIR


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path, alertmanager_cache: Path) -> AsyncIterator[Kupe]:
    settings = test_settings(
        tmp_path,
        database_url,
        alerting={"backend": "none", "cache_dir": alertmanager_cache},
    )
    async with running_kupe(settings) as app:
        yield app


async def put(kupe: Kupe, creds: TenantCreds, path: str, body: Any, **headers: str) -> Any:
    return await kupe.client.put(
        creds.url(f"/alertmanager/{path}"), json=body, headers={**creds.headers, **headers}
    )


async def get(kupe: Kupe, creds: TenantCreds, path: str) -> Any:
    return await kupe.client.get(creds.url(f"/alertmanager/{path}"), headers=creds.headers)


async def test_receiver_round_trip_masks_and_keeps_credentials(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    created = await put(kupe, acme, "receivers/oncall", {**RECEIVER, "name": "ignored"})
    assert created.status_code == 200, created.text
    assert created.json() == {
        "name": "oncall",
        "webhook_configs": [{"url": "<secret>", "send_resolved": True}],
    }
    etag = created.headers["ETag"]
    fetched = await get(kupe, acme, "receivers/oncall")
    assert fetched.json() == created.json()
    assert fetched.headers["ETag"] == etag
    assert HOOK not in fetched.text

    # The Terraform provider sends back what it read: the sentinel keeps the stored URL.
    changed = {"webhook_configs": [{"url": "<secret>", "send_resolved": False}]}
    replaced = await put(kupe, acme, "receivers/oncall", changed, **{"If-Match": etag})
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["ETag"] != etag
    config = await get(kupe, acme, "config")
    assert HOOK not in config.text
    async with kupe.runtime.db.read() as session:
        docs = await kupe.runtime.services.alerting.documents(session, await _tenant_id(kupe))
    assert docs.receivers["oncall"].body == {
        "webhook_configs": [{"url": HOOK, "send_resolved": False}]
    }

    # A sentinel with nothing stored behind it is dropped, never stored.
    slack = {"slack_configs": [{"api_url": "<secret>", "channel": "#ops"}]}
    refused = await put(kupe, acme, "receivers/chat", slack)
    # Without an api_url (none stored, none global) Alertmanager refuses the receiver.
    assert refused.status_code == 400
    assert "Alertmanager refused the configuration" in refused.json()["error"]
    assert (await get(kupe, acme, "receivers/chat")).status_code == 404

    listed = await get(kupe, acme, "receivers")
    assert [item["name"] for item in listed.json()["items"]] == ["oncall"]


async def test_invalid_configuration_is_refused_with_alertmanagers_message(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    bad = {"webhook_configs": [{"url": HOOK, "max_alerts": -1}]}
    refused = await put(kupe, acme, "receivers/oncall", bad)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == "VALIDATION_FAILED"
    assert "max_alerts" in body["error"] or "cannot unmarshal" in body["error"], body
    assert HOOK not in refused.text
    assert "tok3n" not in refused.text
    unknown = await put(kupe, acme, "receivers/oncall", {"webhook_configz": []})
    assert unknown.status_code == 400
    assert "webhook_configz" in unknown.json()["error"]
    bad_url = {"webhook_configs": [{"url": "ftp://user:pa55word@host/hook"}]}
    refused_url = await put(kupe, acme, "receivers/oncall", bad_url)
    assert refused_url.status_code == 400
    assert "pa55word" not in refused_url.text
    assert (await get(kupe, acme, "receivers/oncall")).status_code == 404
    # Files on Kupe's host are never read for a tenant.
    files = {"webhook_configs": [{"url_file": "/etc/passwd"}]}
    refused_file = await put(kupe, acme, "receivers/oncall", files)
    assert refused_file.status_code == 400
    assert refused_file.json()["field"] == "webhook_configs.0.url_file"
    bad_route = {"items": [{"receiver": "kupe-default", "group_wait": "soon"}]}
    refused_route = await put(kupe, acme, "routes", bad_route)
    assert refused_route.status_code == 400
    assert "soon" in refused_route.json()["error"]
    for unwritable in (b'{"webhook_configs": [{"url": "a\\u0000"}]}', b'{"x\\ud800": 1}'):
        refused_text = await kupe.client.put(
            acme.url("/alertmanager/receivers/oncall"),
            content=unwritable,
            headers={**acme.headers, "Content-Type": "application/json"},
        )
        assert refused_text.status_code == 400, refused_text.text
        assert refused_text.json()["code"] in ("VALIDATION_FAILED", "MALFORMED_JSON")
    bad_global = await put(kupe, acme, "global", {"resolve_timeout": "eventually"})
    assert bad_global.status_code == 400
    assert (await get(kupe, acme, "global")).json() == {}


async def test_routes_name_known_receivers_and_pin_them(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    routes = {"items": [{"receiver": "oncall", "matchers": ['severity="critical"']}]}
    unknown = await put(kupe, acme, "routes", routes)
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "items.0.receiver"
    assert (await put(kupe, acme, "receivers/oncall", RECEIVER)).status_code == 200
    nested = {"items": [{"receiver": "oncall", "routes": [{"receiver": "nobody"}]}]}
    deep = await put(kupe, acme, "routes", nested)
    assert deep.status_code == 400
    assert deep.json()["field"] == "items.0.routes.0.receiver"
    stored = await put(kupe, acme, "routes", routes)
    assert stored.status_code == 200, stored.text
    assert stored.json() == routes
    in_use = await kupe.client.delete(
        acme.url("/alertmanager/receivers/oncall"), headers=acme.headers
    )
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "RECEIVER_IN_USE"
    config = (await get(kupe, acme, "config")).json()
    assert config["route"] == {
        "receiver": "kupe-default",
        "group_by": ["alertname"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": routes["items"],
    }
    assert [r["name"] for r in config["receivers"]] == ["kupe-default", "oncall"]
    cleared = await put(kupe, acme, "routes", {"items": None})
    assert cleared.json() == {"items": []}
    gone = await kupe.client.delete(
        acme.url("/alertmanager/receivers/oncall"), headers=acme.headers
    )
    assert gone.status_code == 204
    assert (await get(kupe, acme, "receivers/oncall")).status_code == 404


async def test_each_document_has_its_own_etag_and_honours_if_match(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    routes = await get(kupe, acme, "routes")
    glob = await get(kupe, acme, "global")
    assert routes.json() == {"items": []}
    first = await put(kupe, acme, "global", {"smtp_from": "a@example.com"})
    assert first.status_code == 200
    # The routes' ETag did not move with the global section.
    assert (await get(kupe, acme, "routes")).headers["ETag"] == routes.headers["ETag"]
    stale = await put(
        kupe, acme, "global", {"smtp_from": "b@example.com"}, **{"If-Match": glob.headers["ETag"]}
    )
    assert stale.status_code == 412
    assert (await get(kupe, acme, "global")).json() == {"smtp_from": "a@example.com"}
    fresh = await put(
        kupe, acme, "global", {"smtp_from": "b@example.com"}, **{"If-Match": first.headers["ETag"]}
    )
    assert fresh.status_code == 200
    absent = await put(kupe, acme, "receivers/new", RECEIVER, **{"If-Match": "*"})
    assert absent.status_code == 412
    not_modified = await kupe.client.get(
        acme.url("/alertmanager/global"),
        headers={**acme.headers, "If-None-Match": fresh.headers["ETag"]},
    )
    assert not_modified.status_code == 304
    cleared = await put(kupe, acme, "global", {})
    assert cleared.json() == {}


async def test_global_credentials_are_masked_and_kept(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    body = {"slack_api_url": SLACK, "smtp_auth_password": "hunter2-smtp", "smtp_from": "a@b.c"}
    stored = await put(kupe, acme, "global", body)
    assert stored.status_code == 200, stored.text
    assert stored.json() == {
        "slack_api_url": "<secret>",
        "smtp_auth_password": "<secret>",
        "smtp_from": "a@b.c",
    }
    chat = {"slack_configs": [{"channel": "#ops"}]}
    assert (await put(kupe, acme, "receivers/chat", chat)).status_code == 200
    again = await put(kupe, acme, "global", {**stored.json(), "smtp_from": "x@b.c"})
    assert again.status_code == 200
    async with kupe.runtime.db.read() as session:
        docs = await kupe.runtime.services.alerting.documents(session, await _tenant_id(kupe))
    assert docs.global_ == {**body, "smtp_from": "x@b.c"}
    async with kupe.runtime.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM alertmanager_configs"))).all()
        rows += (await session.execute(text("SELECT * FROM alertmanager_receivers"))).all()
    dumped = repr(rows)
    for secret in (SLACK, "hunter2-smtp", "s1ack-secret", "#ops"):
        assert secret not in dumped


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9093/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0.0.0.0/hook",
    ],
)
async def test_private_addresses_are_refused_by_default(kupe: Kupe, url: str) -> None:
    acme = await kupe.tenant("acme")
    refused = await put(kupe, acme, "receivers/oncall", {"webhook_configs": [{"url": url}]})
    assert refused.status_code == 400
    assert refused.json()["field"] == "webhook_configs.0.url"
    assert url not in refused.text
    proxied = {"webhook_configs": [{"url": HOOK, "http_config": {"proxy_url": url}}]}
    assert (await put(kupe, acme, "receivers/oncall", proxied)).status_code == 400
    glob = await put(kupe, acme, "global", {"slack_api_url": url})
    assert glob.json()["field"] == "slack_api_url"


async def test_roles_plan_cap_and_tenants_apart(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="starter")  # maxReceivers: 2
    other = await kupe.tenant("other")
    reader = await kupe.api_key("acme", "readonly")
    read_headers = {"Authorization": f"Bearer {reader}"}
    assert (await put(kupe, acme, "receivers/a", RECEIVER)).status_code == 200
    assert (await put(kupe, acme, "receivers/b", RECEIVER)).status_code == 200
    capped = await put(kupe, acme, "receivers/c", RECEIVER)
    assert capped.status_code == 403
    assert capped.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    # Replacing one is no new receiver.
    assert (await put(kupe, acme, "receivers/b", RECEIVER)).status_code == 200
    denied = await kupe.client.put(
        acme.url("/alertmanager/receivers/a"), json=RECEIVER, headers=read_headers
    )
    assert denied.status_code == 403
    readable = await kupe.client.get(acme.url("/alertmanager/receivers/a"), headers=read_headers)
    assert readable.status_code == 200
    assert (await get(kupe, other, "receivers/a")).status_code == 404
    assert (await get(kupe, other, "receivers")).json() == {"items": []}
    assert (
        await kupe.client.get(acme.url("/alertmanager/routes"), headers=other.headers)
    ).status_code in (401, 403)
    reserved = await put(kupe, acme, "receivers/kupe-default", RECEIVER)
    assert reserved.status_code == 400
    assert reserved.json()["field"] == "name"


async def test_without_the_checker_writes_answer_503_and_store_nothing(
    database_url: str, tmp_path: Path
) -> None:
    settings = test_settings(
        tmp_path, database_url, alerting={"backend": "none", "cache_dir": tmp_path / "empty"}
    )
    assert not find_binaries(tmp_path / "empty").installed
    async with running_kupe(settings) as kupe:
        acme = await kupe.tenant("acme")
        refused = await put(kupe, acme, "receivers/oncall", RECEIVER)
        assert refused.status_code == 503
        assert "not installed" in refused.json()["error"]
        assert (await get(kupe, acme, "receivers/oncall")).status_code == 404


async def _tenant_id(kupe: Kupe, name: str = "acme") -> str:
    async with kupe.runtime.db.read() as session:
        found = await session.scalar(
            text("SELECT id FROM tenants WHERE name = :n AND removed_at IS NULL"), {"n": name}
        )
    assert found is not None
    return str(found)


async def test_concurrent_writes_serialise_and_keep_the_cap(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="starter")  # maxReceivers: 2
    assert (await put(kupe, acme, "receivers/first", RECEIVER)).status_code == 200
    racers = await asyncio.gather(*(put(kupe, acme, f"receivers/r{i}", RECEIVER) for i in range(5)))
    assert sorted(r.status_code for r in racers) == [200, 403, 403, 403, 403]
    listed = (await get(kupe, acme, "receivers")).json()["items"]
    assert len(listed) == 2
    other = await kupe.tenant("other", plan="pro")
    writes = await asyncio.gather(
        *(put(kupe, other, f"receivers/r{i}", RECEIVER) for i in range(5)),
        put(kupe, other, "global", {"smtp_from": "ops@example.com"}),
    )
    assert [w.status_code for w in writes] == [200] * 6
    assert len((await get(kupe, other, "receivers")).json()["items"]) == 5
    assert (await get(kupe, other, "global")).json() == {"smtp_from": "ops@example.com"}


async def test_another_server_key_answers_503_not_500(database_url: str, tmp_path: Path) -> None:
    first = {"backend": "none", "secret_key": "A" * 43 + "="}
    settings = test_settings(tmp_path, database_url, alerting=first)
    async with running_kupe(settings) as kupe:
        acme = await kupe.tenant("acme")
        assert (await put(kupe, acme, "receivers/oncall", RECEIVER)).status_code == 200
    second = test_settings(
        tmp_path, database_url, alerting={"backend": "none", "secret_key": "B" * 43 + "="}
    )
    async with running_kupe(second) as kupe:
        answer = await kupe.client.get(
            acme.url("/alertmanager/receivers/oncall"), headers=acme.headers
        )
        assert answer.status_code == 503
        assert "server's key" in answer.json()["error"]
