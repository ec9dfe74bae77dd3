"""Console pages over HTTP: sign-in redirects, a strict CSP on every console response, pages
and their assets under 100 KB, secrets nowhere but where they belong, and no 500s."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kupe.server.services.console_session import hash_secret
from tests.console.sessions import visitor
from tests.integration.test_no_leaks import _dump_database
from tests.support.harness import Kupe, running_kupe, test_settings
from tests.support.logs import captured_logs

PAGES = (
    "/t/acme/clusters",
    "/t/acme/clusters/new",
    "/t/acme/clusters/web",
    "/t/acme/apikeys",
    "/t/acme/members",
    "/t/acme/tenant",
)
ASSET = re.compile(r'(?:src|href)="(/console/static/[^"]+)"')


def _strict_csp(value: str) -> None:
    directives = dict(part.strip().split(" ", 1) for part in value.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in value


async def test_pages_need_a_session(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    root = await kupe.client.get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/console/signin"
    for path in PAGES:
        answer = await kupe.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/signin?next=")


async def test_every_page_is_strict_small_and_labelled(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        signin = await browser.client.get("/console/signin")
        _strict_csp(signin.headers["content-security-policy"])
        assert '<label for="api-key">API key</label>' in signin.text
        await browser.sign_in(acme.key)
        assets: set[str] = set()
        for path in PAGES:
            page = await browser.page(path)
            assert page.status_code == 200, path
            _strict_csp(page.headers["content-security-policy"])
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"
            assert "<script>" not in page.text
            assert "style=" not in page.text
            # A form the page's script handles cannot be submitted before the script has run
            # (natively, it would be a GET with the fields in the address).
            for attributes, body in re.findall(r"<form([^>]*)>(.*?)</form>", page.text, re.S):
                if "method=" not in attributes:
                    for button in re.findall(r'<button type="submit"[^>]*>', body):
                        assert "disabled" in button, (path, button)
            found = set(ASSET.findall(page.text))
            weight = len(page.content)
            pending, fetched = list(found), set()
            while pending:
                asset = pending.pop()
                if asset in fetched:
                    continue
                fetched.add(asset)
                served = await browser.client.get(asset)
                assert served.status_code == 200, asset
                _strict_csp(served.headers["content-security-policy"])
                weight += len(served.content)
                # A module's imports load with it.
                for name in re.findall(r'from "\./([a-z]+\.js)"', served.text):
                    pending.append(f"/console/static/js/{name}")
            assert weight < 100_000, (path, weight)
            assert len(fetched) >= 2, fetched
            assets |= found
        assert any(a.endswith(".css") or ".css?" in a for a in assets)
        home = await browser.client.get("/")
        assert home.headers["location"] == "/t/acme/clusters"


async def test_unknown_pages_and_names_answer_404_pages(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        await browser.sign_in(acme.key)
        for path in (
            "/t/acme/nothing-here",
            "/t/acme/secrets",  # no OpenBao configured here
            "/t/acme/clusters/Not_A_Name",
            "/t/ACME/clusters",
        ):
            answer = await browser.client.get(path)
            assert answer.status_code == 404, path
            assert "text/html" in answer.headers["content-type"]
            _strict_csp(answer.headers["content-security-policy"])
        missing = await browser.client.get("/console/static/js/nothing.js")
        assert missing.status_code == 404
        # The API keeps its JSON 404 for routes it does not have.
        assert (await browser.client.get("/api/v1/nothing")).json()["code"] == "NOT_FOUND"


async def test_hostile_console_input_never_fails_the_server(kupe: Kupe) -> None:
    await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        bodies = [
            b"",
            b"api_key=%ff%fe&token=%00",
            b"&&&==&" * 100,
            b"api_key=" + b"k" * 200_000,
        ]
        for body in bodies:
            answer = await browser.client.post(
                "/console/signin",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert 400 <= answer.status_code < 500, body[:20]
        odd = await browser.client.post(
            "/console/signin", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert odd.status_code == 415
        weird = await browser.client.get("/console/signin?next=%00%ff&ended=%ff")
        assert weird.status_code == 200
        callback = await browser.client.get("/console/oidc/callback?state=a.b&code=c")
        assert callback.status_code == 404  # OIDC is not configured here


async def test_sections_are_linked_where_the_server_offers_them(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    async with visitor(kupe) as browser:
        await browser.sign_in(acme.key)
        clusters = await browser.page("/t/acme/clusters")
        for slug in ("invoices", "alerting"):
            assert f'href="/t/acme/{slug}"' in clusters.text, slug
        # Secrets need OpenBao, which this server does not have: no link, no page.
        assert "/t/acme/secrets" not in clusters.text
        assert (await browser.client.get("/t/acme/secrets")).status_code == 404
        invoices = await browser.page("/t/acme/invoices")
        assert invoices.status_code == 200
        assert "js/invoices.js" in invoices.text
        alerting = await browser.page("/t/acme/alerting")
        assert alerting.status_code == 200
        assert "js/alerting.js" in alerting.text


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[io.StringIO]:
    with captured_logs(tmp_path) as stream:
        yield stream


async def test_keys_session_ids_and_tokens_never_reach_logs_or_the_database(
    tmp_path: Path, database_url: str, debug_log: io.StringIO
) -> None:
    async with running_kupe(test_settings(tmp_path, database_url, log_level="debug")) as kupe:
        acme = await kupe.tenant("acme")
        async with visitor(kupe) as browser:
            responses: list[str] = []

            async def record(response: httpx.Response) -> None:
                await response.aread()
                responses.append(str(response.headers) + response.text)

            browser.client.event_hooks["response"].append(record)
            signed_in = await browser.sign_in(acme.key)
            assert signed_in.status_code == 303
            session_id = browser.session_cookie
            assert session_id
            await browser.page("/t/acme/clusters")
            created = await browser.client.post(
                "/api/v1/tenants/acme/clusters",
                json={"name": "web", "displayName": "Web", "type": "shared"},
                headers=browser.write_headers(),
            )
            assert created.status_code == 201
            await browser.client.post("/api/v1/tenants/acme/clusters", json={})
            async with visitor(kupe) as other:
                assert (await other.sign_in(acme.key + "tail")).status_code == 401
            database = "\n".join(await _dump_database(kupe))
            await browser.client.post("/console/signout", data={"csrf": browser.csrf})
    log_text = debug_log.getvalue()
    assert "/console/signin" in log_text
    assert hash_secret(session_id) in database  # the session's row was searched too
    assert acme.key.split("_")[1] in database  # the key id is there; its secret is not
    answers = "\n".join(responses)
    assert len(responses) >= 6
    assert session_id in answers  # the one Set-Cookie that carries it
    for secret in (acme.key, acme.key.split("_", 2)[2], session_id, browser.csrf):
        assert secret not in log_text, "a secret reached the logs"
        assert secret not in database, "a secret reached the database"
    for secret in (acme.key, acme.key.split("_", 2)[2]):
        assert secret not in answers, "the API key came back in a response"
