"""The audit log (API §11) on SQLite and PostgreSQL: it names the actor of every mutating
request across the isolation matrix, accepted or refused, and shows nothing of other tenants;
failed authentication stays in the operator's log; filters, pages and retention."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_isolation import CASES, ROUTES, _headers, _world
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.logs import captured_logs
from tests.support.oidc import AUDIENCE, serve_issuer


def key_id(raw: str) -> str:
    return f"ak-{raw.split('_')[1]}"


async def audit(kupe: Kupe, creds: TenantCreds, query: str = "") -> list[dict[str, Any]]:
    response = await kupe.client.get(creds.url(f"/audit{query}"), headers=creds.headers)
    assert response.status_code == 200, response.text
    assert "continue" not in response.json()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    # The matrix sends hundreds of bad credentials from one address.
    settings = test_settings(tmp_path, database_url, auth_failure_allowance=100_000)
    async with running_kupe(settings) as app:
        yield app


@pytest.fixture
def security_log(tmp_path: Path) -> Iterator[io.StringIO]:
    with captured_logs(tmp_path) as stream:
        yield stream


async def test_audit_names_every_actor_of_the_isolation_matrix(
    kupe: Kupe, security_log: io.StringIO
) -> None:
    world = await _world(kupe)
    acme = TenantCreds("acme", world.victim_key)
    globex = TenantCreds("globex", world.other_admin_key)
    own = await kupe.create_cluster(globex, "globex-web")
    assert own.status_code == 201
    setup = await audit(kupe, acme)
    admin = f"apikey:{key_id(world.victim_key)}"
    assert [(e["method"], e["target"], e["status"]) for e in reversed(setup)] == [
        ("POST", "clusters/secret-prod", 201),
        ("POST", f"members/{world.secrets[4]}", 201),
        ("POST", f"apikeys/{world.victim_key_id}", 201),
        ("POST", setup[-4]["target"], 201),
        ("DELETE", setup[-4]["target"], 204),
        ("POST", setup[-6]["target"], 201),
    ]
    assert {e["actor"] for e in setup} == {admin}

    refused_writes: list[tuple[str, str]] = []
    for case in CASES:
        tenant = "nowhere" if case == "unknown tenant" else "acme"
        headers = _headers(case, world)
        for route in ROUTES:
            path = route.path.format(victim_key_id=world.victim_key_id)
            response = await kupe.client.request(
                route.method, f"/api/v1/tenants/{tenant}{path}", json=route.body, headers=headers
            )
            assert response.status_code in (200, 401, 403), response.text
            if case == "readonly key" and route.method != "GET":
                assert response.status_code == 403
                refused_writes.append((route.method, response.headers["x-request-id"]))

    entries = await audit(kupe, acme)
    new = entries[: len(entries) - len(setup)]
    readonly = f"apikey:{key_id(world.readonly_key)}"
    # Only the tenant's own readonly key got past authentication: its refused writes are
    # there, newest first, each with its request id; nobody else's attempts are.
    assert [(e["method"], e["requestId"]) for e in reversed(new)] == refused_writes
    assert {(e["actor"], e["status"]) for e in new} == {(readonly, 403)}
    assert {e["route"] for e in new} >= {
        "/api/v1/tenants/{tenant}/clusters/{name}",
        "/api/v1/tenants/{tenant}/members/{email}",
        "/api/v1/tenants/{tenant}",
    }
    assert all("?" not in e["route"] and e["clientIp"] for e in entries)
    assert {e["target"] for e in new} >= {"tenant", "clusters", "clusters/secret-prod"}

    theirs = await audit(kupe, globex)
    assert [(e["actor"], e["target"]) for e in theirs] == [
        (f"apikey:{key_id(world.other_admin_key)}", "clusters/globex-web")
    ]
    text = json.dumps(theirs)
    assert not [secret for secret in world.secrets if secret in text and secret != "acme"]
    # Failed authentication is the operator's to see.
    lines = [json.loads(line) for line in security_log.getvalue().splitlines() if line[:1] == "{"]
    failures = [line for line in lines if line.get("event") == "auth.failed"]
    assert {line["status"] for line in failures} == {401, 403}
    assert all(world.victim_key not in json.dumps(line) for line in lines)


async def test_refusals_before_authorization_filters_pages_and_retention(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    admin = f"apikey:{key_id(acme.key)}"
    bad = await kupe.client.post(acme.url("/clusters"), json={"name": 3}, headers=acme.headers)
    assert bad.status_code == 400
    # Without a credential the same body is refused the same way, and is no tenant's business.
    unauthenticated = await kupe.client.post(acme.url("/clusters"), json={"name": 3})
    assert unauthenticated.status_code == 400
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    kupe.clock.advance(3600)
    middle = kupe.clock.now()
    patched = await kupe.client.patch(
        acme.url("/clusters/web"), json={"alerts": {"cpu": "80%"}}, headers=acme.headers
    )
    assert patched.status_code == 200, patched.text
    member = await kupe.client.post(
        acme.url("/members"),
        json={"email": "dev@acme.example.com", "role": "readonly"},
        headers=acme.headers,
    )
    assert member.status_code == 201

    everything = await audit(kupe, acme)
    assert [(e["method"], e["target"], e["status"]) for e in everything] == [
        ("POST", "members/dev@acme.example.com", 201),
        ("PATCH", "clusters/web", 200),
        ("POST", "clusters/web", 201),
        ("POST", "clusters", 400),
    ]
    assert {e["actor"] for e in everything} == {admin}
    web = await audit(kupe, acme, "?target=clusters/web")
    assert [e["method"] for e in web] == ["PATCH", "POST"]
    assert await audit(kupe, acme, "?actor=apikey:ak-nobody00") == []
    since = middle.isoformat().replace("+00:00", "Z")
    assert [e["method"] for e in await audit(kupe, acme, f"?since={since}")] == ["POST", "PATCH"]
    assert [e["status"] for e in await audit(kupe, acme, f"?until={since}")] == [201, 400]

    first = await kupe.client.get(acme.url("/audit?limit=3"), headers=acme.headers)
    assert len(first.json()["items"]) == 3
    token = first.json()["continue"]
    rest = await kupe.client.get(
        acme.url("/audit"), params={"limit": 3, "continue": token}, headers=acme.headers
    )
    assert rest.json()["items"] == everything[3:]
    assert "continue" not in rest.json()

    for query, field in (
        ("?since=yesterday", "since"),
        ("?until=2026-13-01T00:00:00Z", "until"),
        ("?continue=nonsense", "continue"),
        (f"?since={since}&until=2020-01-01T00:00:00Z", "since"),
        ("?limit=0", "limit"),
    ):
        refused = await kupe.client.get(acme.url(f"/audit{query}"), headers=acme.headers)
        assert refused.status_code == 400, (query, refused.text)
        assert refused.json()["field"] == field, refused.json()
    readonly = await kupe.api_key("acme", "readonly")
    denied = await kupe.client.get(
        acme.url("/audit"), headers={"Authorization": f"Bearer {readonly}"}
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "ADMIN_REQUIRED"

    kupe.clock.advance(timedelta(days=30).total_seconds() - 1800)
    assert await kupe.runtime.services.audit.prune() == 2
    assert [e["method"] for e in await audit(kupe, acme)] == ["POST", "PATCH"]


async def test_a_members_requests_are_recorded_under_its_email(
    database_url: str, tmp_path: Path
) -> None:
    with serve_issuer() as issuer:
        settings = test_settings(
            tmp_path,
            database_url,
            oidc_issuer=issuer.url,
            oidc_audience=AUDIENCE,
            oidc_jwks_url=issuer.jwks_url,
        )
        async with running_kupe(settings) as kupe:
            acme = await kupe.tenant("acme")
            for email, role in (
                ("ops@acme.example.com", "admin"),
                ("ro@acme.example.com", "readonly"),
            ):
                added = await kupe.client.post(
                    acme.url("/members"), json={"email": email, "role": role}, headers=acme.headers
                )
                assert added.status_code == 201
            now = kupe.clock.now()
            for email in ("ops@acme.example.com", "ro@acme.example.com", "eve@else.example.com"):
                token = issuer.token(email, now=now)
                await kupe.create_cluster(TenantCreds("acme", token), f"by-{email.split('@')[0]}")
            entries = await audit(kupe, acme)
    assert [(e["actor"], e["status"]) for e in entries[:2]] == [
        ("ro@acme.example.com", 403),
        ("ops@acme.example.com", 201),
    ]
    assert all(e["actor"] != "eve@else.example.com" for e in entries)


async def test_filters_that_no_entry_could_match_are_refused(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    for params in ({"target": "a\x00"}, {"actor": "\x1b[31m"}):
        refused = await kupe.client.get(acme.url("/audit"), params=params, headers=acme.headers)
        assert refused.status_code == 400, refused.text
        assert refused.json()["field"] == next(iter(params))
    unknown = await kupe.client.get(acme.url("/webhooks/wh-%00"), headers=acme.headers)
    assert unknown.status_code == 404
