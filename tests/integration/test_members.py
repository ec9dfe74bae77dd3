"""Members (§6): list/add/get/patch/delete, emails case-insensitive and stored lower-case,
the tenant's ETag for If-Match, and the last-admin rule."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tests.support.harness import Kupe, TenantCreds

OWNER = "admin@acme.example.com"


async def _tenant_etag(kupe: Kupe, creds: TenantCreds) -> str:
    return (await kupe.client.get(creds.url(), headers=creds.headers)).headers["etag"]


async def _add(
    kupe: Kupe, creds: TenantCreds, email: str, role: str = "readonly", **headers: str
) -> httpx.Response:
    return await kupe.client.post(
        creds.url("/members"),
        json={"email": email, "role": role},
        headers={**creds.headers, **headers},
    )


async def _patch(
    kupe: Kupe, creds: TenantCreds, email: str, body: Any, **headers: str
) -> httpx.Response:
    return await kupe.client.patch(
        creds.url(f"/members/{quote(email)}"), json=body, headers={**creds.headers, **headers}
    )


async def _delete(kupe: Kupe, creds: TenantCreds, email: str, **headers: str) -> httpx.Response:
    return await kupe.client.delete(
        creds.url(f"/members/{quote(email)}"), headers={**creds.headers, **headers}
    )


async def test_list_members(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.get(acme.url("/members"), headers=acme.headers)
    assert response.status_code == 200
    assert response.json() == {"items": [{"email": OWNER, "role": "admin"}]}
    assert response.headers["etag"] == await _tenant_etag(kupe, acme)
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    assert (
        await kupe.client.get(acme.url("/members"), headers=readonly.headers)
    ).status_code == 200


async def test_add_member_lowercases_and_bumps_the_tenant(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    before = (await kupe.client.get(acme.url(), headers=acme.headers)).json()
    response = await _add(kupe, acme, "Alice.Smith@Example.COM", "admin")
    assert response.status_code == 201, response.text
    assert response.json() == {"email": "alice.smith@example.com", "role": "admin"}
    assert response.headers["location"] == "/api/v1/tenants/acme/members/alice.smith@example.com"
    tenant = await kupe.client.get(acme.url(), headers=acme.headers)
    assert response.headers["etag"] == tenant.headers["etag"]
    assert int(tenant.json()["resourceVersion"]) > int(before["resourceVersion"])
    assert {"email": "alice.smith@example.com", "role": "admin"} in tenant.json()["members"]

    listed = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()["items"]
    assert [m["email"] for m in listed] == ["admin@acme.example.com", "alice.smith@example.com"]

    again = await _add(kupe, acme, "ALICE.SMITH@example.com")
    assert again.status_code == 409
    assert again.json()["code"] == "ALREADY_EXISTS"


async def test_add_member_validation_and_roles(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    cases: list[tuple[Any, str | None]] = [
        ({"email": "not-an-email", "role": "admin"}, "email"),
        ({"email": "bob@example.com", "role": "owner"}, "role"),
        ({"email": "bob@example.com"}, "role"),
        ({"role": "admin"}, "email"),
        ({"email": "bob@example.com", "role": "admin", "name": "Bob"}, "name"),
        ({"email": 7, "role": "admin"}, "email"),
    ]
    for body, field in cases:
        response = await kupe.client.post(acme.url("/members"), json=body, headers=acme.headers)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "VALIDATION_FAILED"
        assert response.json().get("field") == field, (body, response.json())
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    denied = await _add(kupe, readonly, "bob@example.com")
    assert denied.status_code == 403
    assert denied.json()["code"] == "ADMIN_REQUIRED"


async def test_member_writes_honour_the_tenant_etag(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    etag = await _tenant_etag(kupe, acme)
    assert (await _add(kupe, acme, "a@example.com", **{"If-Match": etag})).status_code == 201
    stale = await _add(kupe, acme, "b@example.com", **{"If-Match": etag})
    assert stale.status_code == 412
    assert (
        await _patch(kupe, acme, "a@example.com", {"role": "admin"}, **{"If-Match": etag})
    ).status_code == 412
    assert (await _delete(kupe, acme, "a@example.com", **{"If-Match": etag})).status_code == 412
    members = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()
    assert [m["email"] for m in members["items"]] == ["a@example.com", OWNER]

    current = await _tenant_etag(kupe, acme)
    patched = await _patch(kupe, acme, "a@example.com", {"role": "admin"}, **{"If-Match": current})
    assert patched.status_code == 200
    assert patched.headers["etag"] != current
    removed = await _delete(kupe, acme, "a@example.com", **{"If-Match": patched.headers["etag"]})
    assert removed.status_code == 204
    assert removed.headers["etag"] == await _tenant_etag(kupe, acme)


async def test_get_and_patch_member_by_any_case(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await _add(kupe, acme, "carol@example.com")
    got = await kupe.client.get(
        acme.url("/members/" + quote("Carol@Example.com")), headers=acme.headers
    )
    assert got.status_code == 200
    assert got.json() == {"email": "carol@example.com", "role": "readonly"}
    assert got.headers["etag"] == await _tenant_etag(kupe, acme)
    encoded = await kupe.client.get(acme.url("/members/carol%40example.com"), headers=acme.headers)
    assert encoded.status_code == 200

    response = await _patch(kupe, acme, "CAROL@example.com", {"role": "admin"})
    assert response.status_code == 200
    assert response.json() == {"email": "carol@example.com", "role": "admin"}
    same = await _patch(kupe, acme, "carol@example.com", {"role": "admin"})
    assert same.status_code == 200
    assert same.headers["etag"] == response.headers["etag"]


async def test_patch_member_errors(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    unknown = await _patch(kupe, acme, "nobody@example.com", {"role": "admin"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "NOT_FOUND"
    for body, field in (
        ({"role": "owner"}, "role"),
        ({}, "role"),
        ({"role": "admin", "email": "x@y.z"}, "email"),
    ):
        response = await _patch(kupe, acme, OWNER, body)
        assert response.status_code == 400, body
        assert response.json()["field"] == field
    bad_path = await _patch(kupe, acme, "not an email", {"role": "admin"})
    assert bad_path.status_code == 400
    missing = await kupe.client.get(acme.url("/members/nobody%40example.com"), headers=acme.headers)
    assert missing.status_code == 404


async def test_last_admin_cannot_be_demoted_or_removed(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    before = await _tenant_etag(kupe, acme)
    demote = await _patch(kupe, acme, OWNER, {"role": "readonly"})
    assert demote.status_code == 409
    assert demote.json()["code"] == "LAST_ADMIN"
    remove = await _delete(kupe, acme, OWNER)
    assert remove.status_code == 409
    assert remove.json()["code"] == "LAST_ADMIN"
    assert await _tenant_etag(kupe, acme) == before

    # With a second admin, either may go; then the other is the last one again.
    await _add(kupe, acme, "second@example.com", "admin")
    assert (await _patch(kupe, acme, OWNER, {"role": "readonly"})).status_code == 200
    assert (await _delete(kupe, acme, "second@example.com")).status_code == 409
    assert (await _delete(kupe, acme, OWNER)).status_code == 204
    members = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()
    assert members["items"] == [{"email": "second@example.com", "role": "admin"}]


async def test_remove_member(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await _add(kupe, acme, "dave@example.com")
    response = await _delete(kupe, acme, "Dave@Example.com")
    assert response.status_code == 204
    assert response.content == b""
    again = await _delete(kupe, acme, "dave@example.com")
    assert again.status_code == 404
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    denied = await _delete(kupe, readonly, OWNER)
    assert denied.status_code == 403


async def test_member_list_pages(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for name in ("b", "c", "d"):
        await _add(kupe, acme, f"{name}@example.com")
    first = (await kupe.client.get(acme.url("/members?limit=2"), headers=acme.headers)).json()
    assert [m["email"] for m in first["items"]] == ["admin@acme.example.com", "b@example.com"]
    second = await kupe.client.get(
        acme.url("/members"),
        params={"limit": 2, "continue": first["continue"]},
        headers=acme.headers,
    )
    assert [m["email"] for m in second.json()["items"]] == ["c@example.com", "d@example.com"]
    bad = await kupe.client.get(acme.url("/members?limit=0"), headers=acme.headers)
    assert bad.status_code == 400


async def test_a_retried_add_with_its_idempotency_key_replays_and_other_bodies_are_refused(
    kupe: Kupe,
) -> None:
    acme = await kupe.tenant()
    first = await _add(kupe, acme, "dev@acme.example.com", "admin", **{"Idempotency-Key": "a1"})
    # Meanwhile the member is demoted; the replay still answers the original response.
    demoted = await kupe.client.patch(
        acme.url("/members/dev@acme.example.com"), json={"role": "readonly"}, headers=acme.headers
    )
    assert demoted.status_code == 200, demoted.text
    second = await _add(kupe, acme, "dev@acme.example.com", "admin", **{"Idempotency-Key": "a1"})
    assert first.status_code == second.status_code == 201, second.text
    assert first.json() == second.json() == {"email": "dev@acme.example.com", "role": "admin"}
    other = await _add(kupe, acme, "ops@acme.example.com", "admin", **{"Idempotency-Key": "a1"})
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    members = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()["items"]
    assert sorted(m["email"] for m in members) == [OWNER, "dev@acme.example.com"]
