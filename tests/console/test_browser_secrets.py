"""In a real browser, against a real OpenBao: a managed secret is created with a target, reaches
Active without a reload, gets a second target, refuses a bad namespace at its field, and is
deleted; a readonly member sees the secrets and no write controls."""

from __future__ import annotations

import json
import os
import re
import subprocess

import httpx
from playwright.sync_api import expect

from tests.console.conftest import LiveConsole, Shots, Tab
from tests.support.openbao import OpenBaoServer
from tests.support.server_process import KUPE, wait_for

SYNC_DEADLINE_MS = 45_000


def _tenant_with_a_value(live_console: LiveConsole, openbao: OpenBaoServer) -> str:
    """Tenant `vault` (its own, so other console tests' clusters do not show) with a Running
    cluster `web` and a value at db/main in its OpenBao mount; its admin key."""
    key = live_console.tenant("vault", "pro")
    with live_console.api(key) as api:
        created = api.post(
            "/api/v1/tenants/vault/clusters",
            json={"name": "web", "displayName": "Web", "type": "shared"},
        )
        assert created.status_code in (201, 409), created.text
        wait_for(
            "web Running",
            lambda: (
                api.get("/api/v1/tenants/vault/clusters/web").json()["status"]["phase"] == "Running"
            ),
        )
    # The operator hands the tenant its writer token (creating its mount); the tenant writes.
    issued = subprocess.run(
        [*KUPE, "admin", "issue-openbao-token", "--tenant", "vault", "--hours", "1"],
        env={**os.environ, **live_console.group.base_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    token = json.loads(issued.stdout)["token"]
    answer = openbao.request(
        "POST", "kupe-vault/data/db/main", {"data": {"password": "pw-1"}}, token=token
    )
    assert answer.status_code == 200, answer.text
    return key


def test_a_secret_is_created_synced_retargeted_and_deleted(
    tab: Tab, live_console: LiveConsole, openbao: OpenBaoServer, shots: Shots
) -> None:
    key = _tenant_with_a_value(live_console, openbao)
    page = tab.page
    tab.sign_in(key)
    page.get_by_role("link", name="Secrets").click()
    expect(page.get_by_role("heading", name="Secrets", exact=True)).to_be_visible()
    expect(page.locator("#status")).to_have_text("0 secrets")

    page.get_by_label("Name", exact=True).fill("db")
    page.get_by_label("OpenBao path").fill("db/main")
    page.get_by_role("button", name="Add target").click()
    page.get_by_label("Target 1 cluster").select_option("web")
    page.get_by_label("Target 1 namespace").fill("apps")
    page.get_by_role("button", name="Create secret").click()
    row = page.get_by_role("row", name=re.compile(r"^db "))
    expect(row).to_contain_text("db/main")
    expect(row).to_contain_text("Active", timeout=SYNC_DEADLINE_MS)
    expect(row).to_contain_text("web/apps/db Synced")
    expect(row).to_contain_text("version 1")
    shots.take(page, "secrets-active", full_page=True)
    assert "pw-1" not in page.content(), "the value reached the page"

    # Another target, through the edit form (PATCH with the secret's ETag).
    row.get_by_role("button", name="Edit targets of db").click()
    expect(page.get_by_role("heading", name="Targets of db")).to_be_visible()
    expect(page.get_by_label("Target 1 namespace")).to_have_value("apps")
    page.get_by_role("button", name="Add target").click()
    page.get_by_label("Target 2 cluster").select_option("web")
    page.get_by_label("Target 2 namespace").fill("Bad_Namespace")
    page.get_by_role("button", name="Save targets").click()
    bad = page.get_by_label("Target 2 namespace")
    expect(bad).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#t-1-namespace-error")).to_contain_text("namespace")
    bad.fill("batch")
    page.get_by_label("Target 2 Secret name").fill("db-creds")
    page.get_by_role("button", name="Save targets").click()
    expect(page.get_by_role("heading", name="Add a secret")).to_be_visible()
    expect(row).to_contain_text("web/batch/db-creds Synced", timeout=SYNC_DEADLINE_MS)
    expect(row).to_contain_text("Active", timeout=SYNC_DEADLINE_MS)
    shots.take(page, "secrets-two-targets", full_page=True)
    with live_console.api(key) as api:
        body = api.get("/api/v1/tenants/vault/secrets/db").json()
    assert body["sync"] == [
        {"cluster": "web", "namespace": "apps"},
        {"cluster": "web", "namespace": "batch", "secretName": "db-creds"},
    ]

    row.get_by_role("button", name="Delete db").click()
    row.get_by_role("button", name="Confirm deleting db").click()
    expect(page.get_by_role("row", name=re.compile(r"^db "))).to_have_count(
        0, timeout=SYNC_DEADLINE_MS
    )
    with live_console.api(key) as api:
        assert api.get("/api/v1/tenants/vault/secrets/db").status_code == 404
    shots.take(page, "secrets-deleted", full_page=True)


def test_a_readonly_member_sees_secrets_but_cannot_change_them(
    tab: Tab, live_console: LiveConsole, openbao: OpenBaoServer
) -> None:
    key = _tenant_with_a_value(live_console, openbao)
    with live_console.api(key) as api:
        created = api.post(
            "/api/v1/tenants/vault/secrets",
            json={"name": "cache", "secretPath": "db/main", "sync": []},
        )
        assert created.status_code == 201, created.text
        reader = api.post(
            "/api/v1/tenants/vault/apikeys", json={"displayName": "viewer", "role": "readonly"}
        ).json()["key"]
    page = tab.page
    tab.sign_in(reader)
    page.get_by_role("link", name="Secrets").click()
    row = page.get_by_role("row", name=re.compile(r"^cache "))
    expect(row).to_contain_text("Active", timeout=SYNC_DEADLINE_MS)
    expect(page.get_by_role("button", name="Create secret")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    # And the server refuses the write the page does not offer.
    with httpx.Client(base_url=live_console.url, timeout=30) as client:
        refused = client.delete(
            "/api/v1/tenants/vault/secrets/cache", headers={"Authorization": f"Bearer {reader}"}
        )
    assert refused.status_code == 403
    with live_console.api(key) as api:
        assert api.delete("/api/v1/tenants/vault/secrets/cache").status_code == 204
