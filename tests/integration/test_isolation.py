"""Tenant isolation: every tenant-scoped route against every kind of wrong caller answers the
exact status and code, reveals nothing of another tenant, and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.support.harness import Kupe

VICTIM_CLUSTER = "secret-prod"
VICTIM_MEMBER = "alice@acme.example.com"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to /api/v1/tenants/{tenant}
    body: dict[str, Any] | None = None
    write: bool = False
    admin_read: bool = False  # admin-only although it only reads

    @property
    def label(self) -> str:
        return f"{self.method} {self.path or '/'}"


ROUTES = [
    Route("GET", ""),
    Route("PATCH", "", {"enforceLogLimit": True}, write=True),
    Route("GET", "/clusters"),
    Route(
        "POST",
        "/clusters",
        {"name": "intruder", "displayName": "Intruder", "type": "shared"},
        write=True,
    ),
    Route("GET", f"/clusters/{VICTIM_CLUSTER}"),
    Route("PATCH", f"/clusters/{VICTIM_CLUSTER}", {"resources": {"cpu": "1"}}, write=True),
    Route("DELETE", f"/clusters/{VICTIM_CLUSTER}", write=True),
    Route("GET", f"/clusters/{VICTIM_CLUSTER}/kubeconfig"),
    Route("GET", "/apikeys", admin_read=True),
    Route("POST", "/apikeys", {"displayName": "intruder", "role": "admin"}, write=True),
    Route("DELETE", "/apikeys/{victim_key_id}", write=True),
    Route("GET", "/members"),
    Route("POST", "/members", {"email": "mallory@globex.example.com", "role": "admin"}, write=True),
    Route("GET", f"/members/{VICTIM_MEMBER}"),
    Route("PATCH", f"/members/{VICTIM_MEMBER}", {"role": "readonly"}, write=True),
    Route("DELETE", f"/members/{VICTIM_MEMBER}", write=True),
    Route("GET", "/audit", admin_read=True),
    Route("GET", "/webhooks", admin_read=True),
    Route("POST", "/webhooks", {"url": "https://93.184.215.14/hook", "events": ["*"]}, write=True),
]

UNAUTHORIZED = (401, "UNAUTHORIZED")
NOT_A_MEMBER = (403, "NOT_A_MEMBER")
ADMIN_REQUIRED = (403, "ADMIN_REQUIRED")
CASES = [
    "admin of another tenant",
    "readonly key",
    "revoked key",
    "expired key",
    "no key",
    "malformed key",
    "wrong scheme",
    "unknown tenant",
]


@dataclass
class World:
    victim_key: str
    victim_key_id: str
    readonly_key: str
    revoked_key: str
    expired_key: str
    other_admin_key: str
    secrets: list[str]  # strings only the victim's own callers may ever see


async def _world(kupe: Kupe) -> World:
    acme = await kupe.tenant("acme", plan="business")
    globex = await kupe.tenant("globex", plan="business")
    headers = acme.headers
    created = await kupe.create_cluster(acme, VICTIM_CLUSTER, displayName="Secret Production")
    assert created.status_code == 201
    await kupe.run_for(10)
    member = await kupe.client.post(
        acme.url("/members"), json={"email": VICTIM_MEMBER, "role": "admin"}, headers=headers
    )
    assert member.status_code == 201
    spare = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "spare key", "role": "admin"}, headers=headers
    )
    spare_id = spare.json()["id"]
    revoked = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "old key", "role": "admin"}, headers=headers
    )
    gone = await kupe.client.delete(acme.url(f"/apikeys/{revoked.json()['id']}"), headers=headers)
    assert gone.status_code == 204
    expiring = await kupe.client.post(
        acme.url("/apikeys"),
        json={
            "displayName": "temporary key",
            "role": "admin",
            "expiresAt": (kupe.clock.now() + timedelta(seconds=5)).isoformat(),
        },
        headers=headers,
    )
    assert expiring.status_code == 201
    kupe.clock.advance(6)
    endpoint = await kupe.client.get(acme.url(f"/clusters/{VICTIM_CLUSTER}"), headers=headers)
    return World(
        victim_key=acme.key,
        victim_key_id=spare_id,
        readonly_key=await kupe.api_key("acme", "readonly"),
        revoked_key=revoked.json()["key"],
        expired_key=expiring.json()["key"],
        other_admin_key=globex.key,
        secrets=[
            "acme",
            "Acme",
            VICTIM_CLUSTER,
            "Secret Production",
            VICTIM_MEMBER,
            spare_id,
            "spare key",
            endpoint.json()["status"]["endpoint"],
        ],
    )


async def _snapshot(kupe: Kupe, key: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    base = "/api/v1/tenants/acme"
    out = {}
    for path in ("", "/clusters", "/members", "/apikeys", "/webhooks"):
        response = await kupe.client.get(base + path, headers=headers)
        assert response.status_code == 200
        out[path] = response.json()
    for item in out["/apikeys"]["items"]:
        item.pop("lastUsedAt", None)  # the snapshot itself uses the victim's key
    return out


def _expected(case: str, route: Route) -> tuple[int, str] | int:
    if case in ("revoked key", "expired key", "no key", "malformed key", "wrong scheme"):
        return UNAUTHORIZED
    if case in ("admin of another tenant", "unknown tenant"):
        return NOT_A_MEMBER
    assert case == "readonly key"
    if route.write or route.admin_read:
        return ADMIN_REQUIRED
    return 200


def _headers(case: str, world: World) -> dict[str, str]:
    token = {
        "admin of another tenant": world.other_admin_key,
        "readonly key": world.readonly_key,
        "revoked key": world.revoked_key,
        "expired key": world.expired_key,
        "malformed key": "kupe_nope",
        "unknown tenant": world.other_admin_key,
    }.get(case)
    if case == "no key":
        return {}
    if case == "wrong scheme":
        return {"Authorization": f"Basic {world.victim_key}"}
    assert token is not None
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("case", CASES)
async def test_isolation_matrix(kupe: Kupe, case: str) -> None:
    world = await _world(kupe)
    before = await _snapshot(kupe, world.victim_key)
    tenant = "nowhere" if case == "unknown tenant" else "acme"
    headers = _headers(case, world)
    problems: list[str] = []
    for route in ROUTES:
        path = f"/api/v1/tenants/{tenant}" + route.path.format(victim_key_id=world.victim_key_id)
        response = await kupe.client.request(route.method, path, json=route.body, headers=headers)
        expected = _expected(case, route)
        if isinstance(expected, int):
            if response.status_code != expected:
                problems.append(f"{route.label}: {response.status_code} {response.text}")
            continue
        status, code = expected
        body = response.json() if response.content else {}
        if response.status_code != status or body.get("code") != code:
            problems.append(
                f"{route.label}: wanted {status} {code}, got {response.status_code} {response.text}"
            )
            continue
        if set(body) != {"error", "code"}:
            problems.append(f"{route.label}: unexpected fields in {body}")
        leaked = [secret for secret in world.secrets if secret in response.text]
        if leaked:
            problems.append(f"{route.label}: body reveals {leaked}: {response.text}")
        if status == 401 and response.headers.get("www-authenticate") != "Bearer":
            problems.append(f"{route.label}: 401 without WWW-Authenticate")
    assert not problems, "\n".join(problems)

    after = await _snapshot(kupe, world.victim_key)
    if case == "readonly key":
        # Reads by a readonly key of the tenant record lastUsedAt on that key only.
        for snapshot in (before, after):
            snapshot["/apikeys"]["items"] = [
                k for k in snapshot["/apikeys"]["items"] if k["displayName"] != "readonly key"
            ]
    assert after == before, "a refused request changed the tenant"


async def test_other_tenant_listing_shows_only_its_own_objects(kupe: Kupe) -> None:
    world = await _world(kupe)
    globex = {"Authorization": f"Bearer {world.other_admin_key}"}
    for path in ("", "/clusters", "/members", "/apikeys"):
        response = await kupe.client.get(f"/api/v1/tenants/globex{path}", headers=globex)
        assert response.status_code == 200
        leaked = [s for s in world.secrets if s in response.text]
        assert not leaked, (path, leaked, response.text)
