"""In a real browser: API keys (shown once, copied, revoked), members (added, changed,
removed; the last-admin rule explained), the tenant's plan and usage, what a readonly member
sees, and the server refusing forged, cross-site and cross-tenant writes; sign-out."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import expect

from tests.console.conftest import LiveConsole, Shots, Tab

FETCH = """async ([url, method, body, csrf]) => {
  const headers = {"Content-Type": "application/json"};
  if (csrf) headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]').content;
  const sent = body === null ? undefined : JSON.stringify(body);
  const r = await fetch(url, {method, headers, body: sent});
  return [r.status, await r.json()];
}"""
CLUSTER = {"name": "forged", "displayName": "Forged", "type": "shared"}


def test_api_keys_are_shown_once_copied_and_revoked(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    page = tab.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab.sign_in(live_console.key)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    expect(page.locator("#keys")).to_contain_text("ak-")
    page.get_by_label("Key name").fill("ci pipeline")
    page.get_by_label("Role").select_option("readonly")
    page.get_by_role("button", name="Create key").click()
    new_key = page.get_by_label("New API key")
    expect(new_key).to_have_value(re.compile(r"^kupe_[a-z0-9]{8}_"))
    raw = new_key.input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    row = page.get_by_role("row", name=re.compile("ci pipeline"))
    expect(row).to_contain_text("readonly")
    shots.take(page, "apikeys-created", full_page=True)
    with httpx.Client(base_url=live_console.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {raw}"}
        assert client.get("/api/v1/tenants/default", headers=headers).status_code == 200

        page.reload()
        expect(page.get_by_label("New API key")).to_be_hidden()
        assert raw not in page.content(), "the key was shown again"
        row = page.get_by_role("row", name=re.compile("ci pipeline"))
        row.get_by_role("button", name=re.compile("^Revoke ci pipeline")).click()
        row.get_by_role("button", name=re.compile("^Confirm revoking")).click()
        expect(page.get_by_role("row", name=re.compile("ci pipeline"))).to_have_count(0)
        shots.take(page, "apikeys-revoked", full_page=True)
        assert client.get("/api/v1/tenants/default", headers=headers).status_code == 401


def test_members_are_added_changed_and_removed(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    page = tab.page
    tab.sign_in(live_console.key)
    page.get_by_role("link", name="Members").click()
    owner = page.get_by_role("row", name=re.compile("admin@kupe.internal"))
    expect(owner).to_be_visible()

    page.get_by_label("Email").fill("Dev@Example.com")
    page.get_by_label("Role", exact=True).select_option("readonly")
    page.get_by_role("button", name="Add member").click()
    dev = page.get_by_role("row", name=re.compile("dev@example.com"))
    expect(dev).to_be_visible()
    expect(dev.get_by_label("Role of dev@example.com", exact=True)).to_have_value("readonly")

    page.get_by_label("Email").fill("dev@example.com")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#m-email-error")).to_contain_text("already a member")

    dev.get_by_label("Role of dev@example.com", exact=True).select_option("admin")
    dev.get_by_role("button", name="Change role of dev@example.com").click()
    expect(page.locator("#live")).to_have_text("dev@example.com is now admin")
    page.reload()
    expect(page.get_by_label("Role of dev@example.com", exact=True)).to_have_value("admin")
    shots.take(page, "members", full_page=True)

    # Demote dev back, then try to demote the last admin: refused, and explained.
    page.get_by_label("Role of dev@example.com", exact=True).select_option("readonly")
    page.get_by_role("button", name="Change role of dev@example.com").click()
    expect(page.locator("#live")).to_have_text("dev@example.com is now readonly")
    page.get_by_label("Role of admin@kupe.internal", exact=True).select_option("readonly")
    page.get_by_role("button", name="Change role of admin@kupe.internal").click()
    alert = page.locator("#errors [role=alert]")
    expect(alert).to_contain_text("at least one admin")
    expect(alert).to_contain_text("make another member an admin first")
    expect(page.get_by_label("Role of admin@kupe.internal", exact=True)).to_have_value("admin")
    shots.take(page, "members-last-admin", full_page=True)

    page.get_by_role("button", name="Remove dev@example.com").click()
    expect(page.get_by_role("row", name=re.compile("dev@example.com"))).to_have_count(0)
    with live_console.api() as api:
        emails = [m["email"] for m in api.get("/api/v1/tenants/default/members").json()["items"]]
        assert "dev@example.com" not in emails


def test_the_tenant_page_shows_usage_and_guards_downgrades(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    key = live_console.tenant("midco", "pro")
    with live_console.api(key) as api:
        created = api.post(
            "/api/v1/tenants/midco/clusters",
            json={
                "name": "big",
                "displayName": "Big",
                "type": "shared",
                "resources": {"cpu": "6", "memory": "12Gi", "storage": "60Gi"},
            },
        )
        assert created.status_code == 201, created.text
    page = tab.page
    tab.sign_in(key)
    page.get_by_role("link", name="Tenant").click()
    cpu = page.get_by_label("CPU")
    expect(cpu).to_have_attribute("max", "8")
    expect(cpu).to_have_attribute("value", "6")
    expect(page.locator("#usage")).to_contain_text("6 of 8 (75%)")
    expect(page.locator("#usage")).to_contain_text("12Gi of 32Gi")
    page.get_by_label("Plan", exact=True).select_option("starter")
    page.get_by_role("button", name="Change plan").click()
    error = page.locator("#t-plan-error")
    expect(error).to_contain_text(re.compile("starter", re.IGNORECASE))
    expect(page.get_by_label("Plan", exact=True)).to_have_attribute("aria-invalid", "true")
    shots.take(page, "tenant-downgrade-blocked", full_page=True)
    page.get_by_label("Plan", exact=True).select_option("business")
    page.get_by_role("button", name="Change plan").click()
    expect(page.locator("#live")).to_have_text("Plan changed to business")
    expect(page.locator("#usage")).to_contain_text("6 of 64")
    expect(page.locator("#facts")).to_contain_text("1 of 20")
    shots.take(page, "tenant", full_page=True)


def test_a_readonly_member_sees_no_write_controls(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    with live_console.api() as api:
        api.post(
            "/api/v1/tenants/default/clusters",
            json={"name": "readable", "displayName": "Readable", "type": "shared"},
        ).raise_for_status()
        readonly = api.post(
            "/api/v1/tenants/default/apikeys", json={"displayName": "viewer", "role": "readonly"}
        ).json()["key"]
    page = tab.page
    tab.sign_in(readonly)
    expect(page.get_by_role("row", name=re.compile("readable"))).to_be_visible()
    expect(page.get_by_role("link", name="Create cluster")).to_have_count(0)
    expect(page.get_by_role("link", name="API keys")).to_have_count(0)
    shots.take(page, "readonly-clusters")
    page.get_by_role("link", name="readable").click()
    expect(page.locator("#phase")).to_have_text("Running", timeout=45_000)
    for name in ("Resize", "Delete cluster"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Upgrade"))).to_have_count(0)
    expect(page.get_by_role("button", name="Download kubeconfig")).to_be_enabled()
    shots.take(page, "readonly-cluster", full_page=True)
    page.get_by_role("link", name="Members").click()
    expect(page.get_by_role("row", name=re.compile("admin@kupe.internal"))).to_be_visible()
    expect(page.get_by_role("button", name="Add member")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)
    shots.take(page, "readonly-members")
    page.goto("/t/default/clusters/new")
    expect(page.get_by_role("alert")).to_contain_text("Only admins can create clusters")
    shots.take(page, "readonly-create")
    # The server refuses a forged write anyway, token or not.
    status, body = page.evaluate(FETCH, ["/api/v1/tenants/default/clusters", "POST", CLUSTER, True])
    assert (status, body["code"]) == (403, "ADMIN_REQUIRED")


def test_csrf_cross_tenant_and_sign_out(tab: Tab, live_console: LiveConsole, shots: Shots) -> None:
    live_console.tenant("othercorp", "starter")
    page = tab.page
    tab.sign_in(live_console.key)
    url = "/api/v1/tenants/default/clusters"
    status, body = page.evaluate(FETCH, [url, "POST", CLUSTER, False])
    assert status == 403
    assert body["code"] == "CSRF_TOKEN_INVALID"
    status, body = page.evaluate(
        FETCH, ["/api/v1/tenants/othercorp/clusters", "POST", CLUSTER, True]
    )
    assert (status, body["code"]) == (403, "NOT_A_MEMBER")
    status, body = page.evaluate(FETCH, ["/api/v1/tenants/othercorp/members", "GET", None, False])
    assert (status, body["code"]) == (403, "NOT_A_MEMBER")
    page.goto("/t/othercorp/clusters")
    expect(page.get_by_role("alert")).to_contain_text("Not a member of this tenant")
    shots.take(page, "cross-tenant")
    with live_console.api() as api:
        assert api.get(f"{url}/forged").status_code == 404

    page.goto("/t/default/clusters")
    cookie = next(c for c in page.context.cookies() if c["name"] == "kupe_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("kupe_session") < 0
    assert live_console.key not in page.content()
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/signin")
    expect(page.get_by_label("API key")).to_be_visible()
    shots.take(page, "signed-out")
    with httpx.Client(base_url=live_console.url, timeout=30) as client:
        client.cookies.set("kupe_session", cookie["value"])
        assert client.get("/api/v1/tenants/default").status_code == 401
    page.goto("/t/default/clusters")
    page.wait_for_url(re.compile(r"/console/signin\?next="))
