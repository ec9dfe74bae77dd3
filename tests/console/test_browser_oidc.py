"""Signing in with a real OpenID Provider (authorization code + PKCE, state and nonce
checked): the session carries the member's email and role, and ends with the membership."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import Shots, keep_on_loopback
from tests.console.oidc_provider import OidcProvider, oidc_provider
from tests.support.live_server import FAST
from tests.support.server_process import free_port, process_group

MEMBER = "ops@example.com"
READER = "reader@example.com"


@dataclass(frozen=True)
class OidcKupe:
    url: str
    key: str
    provider: OidcProvider

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


@pytest.fixture(scope="module")
def oidc_kupe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcKupe]:
    workdir = tmp_path_factory.mktemp("console-oidc")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/console/oidc/callback"
    with oidc_provider(free_port(), callback, workdir / "oidc-provider.log") as provider:
        settings = {
            **FAST,
            "KUPE_OIDC_ISSUER": provider.issuer,
            "KUPE_OIDC_AUDIENCE": provider.client_id,
            "KUPE_OIDC_CLIENT_SECRET": provider.client_secret,
        }
        with process_group(workdir, settings) as group:
            server = group.serve(KUPE_PORT=str(port)).wait_ready()
            kupe = OidcKupe(server.url, group.api_key(), provider)
            with kupe.api() as api:
                for email, role in ((MEMBER, "admin"), (READER, "readonly")):
                    added = api.post(
                        "/api/v1/tenants/default/members", json={"email": email, "role": role}
                    )
                    assert added.status_code == 201, added.text
            yield kupe
            server.stop()


@pytest.fixture
def oidc_page(chromium: Browser, oidc_kupe: OidcKupe) -> Iterator[Page]:
    context = chromium.new_context(base_url=oidc_kupe.url, viewport={"width": 1000, "height": 700})
    context.set_default_timeout(15_000)
    keep_on_loopback(context)
    yield context.new_page()
    context.close()


def sign_in_with_provider(page: Page, tenant: str, login: str, shots: Shots) -> None:
    page.goto("/console/signin")
    page.get_by_label("Tenant").fill(tenant)
    page.get_by_role("button", name="Sign in with OIDC").click()
    page.wait_for_url(re.compile(r"/interaction/"))
    shots.take(page, "provider-login")
    # The provider's own pages: its login form, then its consent screen.
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("correct horse battery staple")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]", has_text="Continue").click()


def test_a_member_signs_in_with_the_provider(
    oidc_page: Page, oidc_kupe: OidcKupe, shots: Shots
) -> None:
    page = oidc_page
    sign_in_with_provider(page, "default", MEMBER, shots)
    page.wait_for_url("**/t/default/clusters")
    expect(page.locator(".actor")).to_contain_text(f"{MEMBER} (admin)")
    shots.take(page, "signed-in-with-oidc")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Key name").fill("made by a member")
    page.get_by_role("button", name="Create key").click()
    row = page.get_by_role("row", name=re.compile("made by a member"))
    # createdBy: the session's member (a deadline for a busy machine, not a transient state)
    expect(row).to_contain_text(MEMBER, timeout=20_000)
    shots.take(page, "member-created-key", full_page=True)

    # Removing the member ends the session's access at once.
    with oidc_kupe.api() as api:
        assert api.delete(f"/api/v1/tenants/default/members/{MEMBER}").status_code == 204
        try:
            status = page.evaluate("fetch('/api/v1/tenants/default').then(r => r.status)")
            assert status == 401
        finally:
            api.post("/api/v1/tenants/default/members", json={"email": MEMBER, "role": "admin"})


def test_a_readonly_member_gets_a_readonly_session(
    oidc_page: Page, oidc_kupe: OidcKupe, shots: Shots
) -> None:
    sign_in_with_provider(oidc_page, "default", READER, shots)
    oidc_page.wait_for_url("**/t/default/clusters")
    expect(oidc_page.locator(".actor")).to_contain_text(f"{READER} (readonly)")
    expect(oidc_page.get_by_role("link", name="Create cluster")).to_have_count(0)


def test_someone_who_is_not_a_member_is_refused(
    oidc_page: Page, oidc_kupe: OidcKupe, shots: Shots
) -> None:
    sign_in_with_provider(oidc_page, "default", "stranger@example.com", shots)
    expect(oidc_page.get_by_role("alert")).to_contain_text("Not a member of this tenant")
    shots.take(oidc_page, "not-a-member")
    cookies = {c["name"] for c in oidc_page.context.cookies()}
    assert "kupe_session" not in cookies


def test_a_callback_this_browser_did_not_start_is_refused(
    oidc_page: Page, oidc_kupe: OidcKupe, shots: Shots
) -> None:
    page = oidc_page
    answer = page.goto("/console/oidc/callback?state=default.forged&code=whatever")
    assert answer is not None
    assert answer.status == 400
    expect(page.get_by_role("alert")).to_contain_text("not started here")
    # A started sign-in whose state was swapped on the way back is refused as well.
    page.goto("/console/signin")
    page.get_by_label("Tenant").fill("default")
    page.get_by_role("button", name="Sign in with OIDC").click()
    page.wait_for_url(re.compile(r"/interaction/"))
    answer = page.goto(f"{oidc_kupe.url}/console/oidc/callback?state=default.tampered&code=x")
    assert answer is not None
    assert answer.status == 400
    shots.take(page, "forged-callback")
    assert "kupe_session" not in {c["name"] for c in page.context.cookies()}
