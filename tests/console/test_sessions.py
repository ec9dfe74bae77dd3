"""The console's session credential at the API level, on SQLite and PostgreSQL: the cookie's
flags, CSRF on writes, revocation and expiry ending access, sign-out, tenants kept apart."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx

from tests.console.sessions import visitor
from tests.support.harness import Kupe

CLUSTER = {"name": "web", "displayName": "Web", "type": "shared"}


def _set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


async def test_sign_in_sets_a_strict_httponly_cookie_and_lands_on_the_clusters(
    kupe: Kupe,
) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        signed_in = await browser.sign_in(acme.key)
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/t/acme/clusters"
        cookie = _set_cookies(signed_in)["kupe_session"]["kupe_session"]
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/"
        assert not cookie["secure"], "plain HTTP cannot carry a Secure cookie"
        assert acme.key not in cookie.value
        assert len(cookie.value) >= 43
        assert acme.key not in signed_in.text

        page = await browser.page("/t/acme/clusters")
        assert page.status_code == 200
        assert browser.csrf
        assert browser.csrf != cookie.value
        tenant = await browser.client.get("/api/v1/tenants/acme")
        assert tenant.status_code == 200, tenant.text
        assert tenant.json()["name"] == "acme"


async def test_the_cookie_is_secure_under_tls(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe, base_url="https://kupe.test") as browser:
        signed_in = await browser.sign_in(acme.key)
        assert signed_in.status_code == 303
        assert _set_cookies(signed_in)["kupe_session"]["kupe_session"]["secure"] is True


async def test_writes_need_the_pages_csrf_token(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        await browser.sign_in(acme.key)
        await browser.page("/t/acme/clusters")
        url = "/api/v1/tenants/acme/clusters"
        missing = await browser.client.post(url, json=CLUSTER)
        assert missing.status_code == 403
        assert missing.json() == {
            "error": "A console write needs the page's CSRF token in X-CSRF-Token",
            "code": "CSRF_TOKEN_INVALID",
        }
        wrong = await browser.client.post(url, json=CLUSTER, headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403
        assert wrong.json()["code"] == "CSRF_TOKEN_INVALID"
        for method in ("PATCH", "DELETE"):
            refused = await browser.client.request(method, f"{url}/web", json={})
            assert refused.status_code == 403, method
        assert (await kupe.client.get(url, headers=acme.headers)).json()["items"] == []

        created = await browser.client.post(url, json=CLUSTER, headers=browser.write_headers())
        assert created.status_code == 201, created.text
        # Reads need no token.
        assert (await browser.client.get(f"{url}/web")).status_code == 200


async def test_revoking_the_key_ends_the_sessions_access_at_once(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    key = await kupe.api_key("acme", "admin")
    async with visitor(kupe) as browser:
        await browser.sign_in(key)
        assert (await browser.client.get("/api/v1/tenants/acme/clusters")).status_code == 200
        keys = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()
        key_id = next(k["id"] for k in keys["items"] if k["displayName"] == "admin key")
        revoked = await kupe.client.delete(acme.url(f"/apikeys/{key_id}"), headers=acme.headers)
        assert revoked.status_code == 204
        after = await browser.client.get("/api/v1/tenants/acme/clusters")
        assert after.status_code == 401
        assert after.json()["code"] == "UNAUTHORIZED"
        page = await browser.client.get("/t/acme/clusters")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/signin")


async def test_sessions_expire_after_eight_idle_hours(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    key = await kupe.api_key("acme", "readonly")
    url = "/api/v1/tenants/acme"
    async with visitor(kupe) as idle, visitor(kupe) as active:
        await idle.sign_in(key)
        await active.sign_in(key)
        kupe.clock.advance(7 * 3600)
        assert (await active.client.get(url)).status_code == 200  # seen again at 7 h
        kupe.clock.advance(3600 + 1)
        expired = await idle.client.get(url)
        assert expired.status_code == 401
        assert "expired" in expired.json()["error"]
        kupe.clock.advance(6 * 3600)  # 7 h since the active one was last seen
        assert (await active.client.get(url)).status_code == 200


async def test_an_active_session_lives_until_its_absolute_end(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    key = await kupe.api_key("acme", "readonly")
    url = "/api/v1/tenants/acme"
    async with visitor(kupe) as browser:
        await browser.sign_in(key)
        for _hour in range(23):
            kupe.clock.advance(3600)
            assert (await browser.client.get(url)).status_code == 200
        kupe.clock.advance(3600)
        assert (await browser.client.get(url)).status_code == 401


async def test_sign_out_deletes_the_session_on_the_server(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        await browser.sign_in(await kupe.api_key("acme", "admin"))
        await browser.page("/t/acme/clusters")
        stolen = browser.session_cookie
        assert stolen
        refused = await browser.client.post("/console/signout", data={"csrf": "nope"})
        assert refused.status_code == 403
        assert (await browser.client.get("/api/v1/tenants/acme")).status_code == 200

        out = await browser.client.post("/console/signout", data={"csrf": browser.csrf})
        assert out.status_code == 303
        assert out.headers["location"] == "/console/signin"
        assert "kupe_session=" in out.headers["set-cookie"]
    # The same cookie, replayed by anyone, no longer works.
    async with visitor(kupe) as thief:
        thief.client.cookies.set("kupe_session", stolen)
        assert (await thief.client.get("/api/v1/tenants/acme")).status_code == 401
        assert (await thief.client.get("/t/acme/clusters")).status_code == 303


async def test_a_session_cannot_reach_another_tenant(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    assert (await kupe.create_cluster(globex, "secret-plans")).status_code == 201
    async with visitor(kupe) as browser:
        await browser.sign_in(await kupe.api_key("acme", "admin"))
        await browser.page("/t/acme/clusters")
        headers = browser.write_headers()
        base = "/api/v1/tenants/globex"
        for method, path in (
            ("GET", ""),
            ("GET", "/clusters"),
            ("GET", "/clusters/secret-plans"),
            ("DELETE", "/clusters/secret-plans"),
            ("POST", "/members"),
        ):
            body = {"email": "x@evil.example", "role": "admin"} if method == "POST" else None
            answer = await browser.client.request(method, base + path, json=body, headers=headers)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["code"] == "NOT_A_MEMBER"
        page = await browser.client.get("/t/globex/clusters")
        assert page.status_code == 403
        assert "secret-plans" not in page.text
    assert await kupe.phase(globex, "secret-plans") == "Pending"


async def test_readonly_sessions_cannot_write_even_with_the_token(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        await browser.sign_in(await kupe.api_key("acme", "readonly"))
        page = await browser.page("/t/acme/clusters")
        assert 'data-role="readonly"' in page.text
        assert "/clusters/new" not in page.text
        forged = await browser.client.post(
            "/api/v1/tenants/acme/clusters", json=CLUSTER, headers=browser.write_headers()
        )
        assert forged.status_code == 403
        assert forged.json()["code"] == "ADMIN_REQUIRED"


async def test_sign_in_refuses_bad_keys_and_forged_forms(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        for bad in ("not-a-key", "kupe_abcdefgh_" + "A" * 43, acme.key + "x"):
            answer = await browser.sign_in(bad)
            assert answer.status_code == 401, bad
            assert "kupe_session" not in answer.headers.get("set-cookie", "")
            assert bad not in answer.text
            assert 'role="alert"' in answer.text
        # A form posted from another site carries no sign-in cookie: refused.
        async with visitor(kupe) as other:
            forged = await other.client.post(
                "/console/signin", data={"api_key": acme.key, "token": "guess" * 5}
            )
            assert forged.status_code == 403
            assert "kupe_session" not in forged.headers.get("set-cookie", "")
        # Where to go after signing in stays inside the console of the session's tenant.
        answer = await browser.sign_in(acme.key, next_path="https://evil.example/t/acme")
        assert answer.headers["location"] == "/t/acme/clusters"


async def test_revoked_and_expired_keys_cannot_sign_in(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    created = await kupe.client.post(
        acme.url("/apikeys"),
        json={"displayName": "short", "role": "admin", "expiresAt": "2026-04-06T13:00:00Z"},
        headers=acme.headers,
    )
    assert created.status_code == 201, created.text
    short = created.json()
    kupe.clock.advance(2 * 3600)
    async with visitor(kupe) as browser:
        expired = await browser.sign_in(short["key"])
        assert expired.status_code == 401
        assert "expired" in expired.text
        deleted = await kupe.client.delete(
            acme.url(f"/apikeys/{short['id']}"), headers=acme.headers
        )
        assert deleted.status_code == 204
        assert (await browser.sign_in(short["key"])).status_code == 401


async def test_bearer_requests_ignore_the_cookie(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    async with visitor(kupe) as browser:
        await browser.sign_in(acme.key)
        # An Authorization header wins over the cookie, and needs no CSRF token.
        answer = await browser.client.post(
            "/api/v1/tenants/globex/clusters", json=CLUSTER, headers=globex.headers
        )
        assert answer.status_code == 201, answer.text


async def test_forms_are_accepted_only_by_the_console(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    answer = await kupe.client.post(
        acme.url("/clusters"), data={"name": "web"}, headers=acme.headers
    )
    assert answer.status_code == 415
    assert answer.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
