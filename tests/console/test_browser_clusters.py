"""In a real browser: sign in, create a cluster and watch it reach Running without a reload,
download its kubeconfig, upgrade, resize and delete it; the create form knows the plan."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from playwright.sync_api import expect

from tests.console.conftest import LiveConsole, Shots, Tab

RUNNING_DEADLINE_MS = 45_000


def test_a_cluster_from_creation_to_deletion(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    page = tab.page
    page.goto("/")
    expect(page.get_by_label("API key")).to_be_visible()
    shots.take(page, "signin")
    tab.sign_in(live_console.key)
    expect(page.get_by_role("heading", name="Clusters")).to_be_visible()
    shots.take(page, "clusters-empty")

    page.get_by_role("link", name="Create cluster").first.click()
    expect(page.get_by_role("heading", name="Create a cluster")).to_be_visible()
    for label in ("Name", "Display name", "Type", "Version", "CPU", "Memory", "Storage"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    version = page.get_by_label("Version", exact=True)
    expect(version.locator("option", has_text="default")).to_have_count(1)
    # The bootstrap tenant's enterprise plan has no limits, and says so.
    expect(page.locator("#plan")).to_contain_text("of unlimited")
    expect(page.locator("#plan")).to_contain_text("pool unlimited")
    expect(page.locator("#plan")).not_to_contain_text("NaN")
    page.get_by_label("Name", exact=True).fill("web")
    page.get_by_label("Display name", exact=True).fill("Web shop")
    version.select_option("1.36")
    page.get_by_label("Memory", exact=True).fill("3")
    page.get_by_role("button", name="Create cluster").click()
    # The server's error, at the field it names, with the request id.
    memory = page.get_by_label("Memory", exact=True)
    expect(memory).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-memory-error")).to_contain_text("must carry a unit")
    expect(page.locator("#f-memory-error")).to_contain_text("request id")
    expect(memory).to_be_focused()
    shots.take(page, "create-field-error", full_page=True)

    memory.fill("4Gi")
    page.get_by_label("CPU", exact=True).fill("2")
    page.get_by_role("button", name="Create cluster").click()
    page.wait_for_url("**/t/default/clusters?created=web")
    page.evaluate("window.kupeNoReload = true")
    row = page.get_by_role("row", name=re.compile(r"\bweb\b"))
    expect(row).to_contain_text("Web shop")
    # This server has watch: the list follows its event stream rather than polling.
    expect(page.locator("#live-mode")).to_have_text("Live: changes stream from the server.")
    expect(row.get_by_text("Running", exact=True)).to_be_visible(timeout=RUNNING_DEADLINE_MS)
    assert page.evaluate("window.kupeNoReload") is True, "the list reloaded to show the phase"
    expect(page.locator("#live")).to_contain_text("web is now")
    shots.take(page, "clusters-running")

    row.get_by_role("link", name="web").click()
    expect(page.locator("#phase")).to_have_text("Running")
    # The cluster's timeline, from the event record.
    expect(page.locator("#timeline")).to_contain_text("Created")
    expect(page.locator("#timeline")).to_contain_text("Running")
    expect(page.get_by_role("button", name="Download kubeconfig")).to_be_enabled()
    expect(page.locator("#connection")).to_contain_text("https://web.default.")
    shots.take(page, "cluster-running", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download kubeconfig").click()
    download = download_info.value
    assert download.suggested_filename == "kupe-default-web.kubeconfig"
    text = Path(download.path()).read_text(encoding="utf-8")
    kubeconfig = yaml.safe_load(text)
    assert kubeconfig["kind"] == "Config"
    assert kubeconfig["current-context"] == "kupe-default-web"
    assert live_console.key not in text

    page.get_by_role("button", name="Upgrade to 1.37").click()
    expect(page.locator("#facts")).to_contain_text("running v1.37", timeout=RUNNING_DEADLINE_MS)
    expect(page.locator("#phase")).to_have_text("Running", timeout=RUNNING_DEADLINE_MS)
    expect(page.locator("#upgrade-info")).to_contain_text("newest on offer")
    shots.take(page, "cluster-upgraded")

    page.get_by_label("CPU", exact=True).fill("3")
    page.get_by_role("button", name="Resize").click()
    expect(page.locator("#facts")).to_contain_text("cpu 3", timeout=RUNNING_DEADLINE_MS)
    expect(page.locator("#facts")).to_contain_text(
        re.compile(r"Generation\s*3 \(applied: 3\)"), timeout=RUNNING_DEADLINE_MS
    )
    page.get_by_label("Memory", exact=True).fill("lots")
    page.get_by_role("button", name="Resize").click()
    expect(page.get_by_label("Memory", exact=True)).to_have_attribute("aria-invalid", "true")

    page.get_by_role("button", name="Enable high availability").click()
    facts = page.locator("#facts")
    healthy = re.compile(r"High availability\s*on \(ha-healthy, 3 of 3 replicas ready\)")
    expect(facts).to_contain_text(healthy, timeout=RUNNING_DEADLINE_MS)
    expect(page.locator("#phase")).to_have_text("Running", timeout=RUNNING_DEADLINE_MS)
    expect(page.get_by_role("button", name="Enable high availability")).to_be_hidden()

    delete = page.get_by_role("button", name="Delete cluster")
    expect(delete).to_be_disabled()
    page.get_by_label("Type the cluster name to confirm").fill("we")
    expect(delete).to_be_disabled()
    page.get_by_label("Type the cluster name to confirm").fill("web")
    expect(delete).to_be_enabled()
    delete.click()
    expect(page.locator("#gone")).to_contain_text("has been deleted", timeout=RUNNING_DEADLINE_MS)
    shots.take(page, "cluster-deleted")
    with live_console.api() as api:
        assert api.get("/api/v1/tenants/default/clusters/web").status_code == 404


def test_the_create_form_knows_the_plan(tab: Tab, live_console: LiveConsole, shots: Shots) -> None:
    key = live_console.tenant("smallco", "starter")
    page = tab.page
    tab.sign_in(key)
    page.goto("/t/smallco/clusters/new")
    expect(page.locator("#plan")).to_contain_text("Plan: Starter")
    expect(page.locator("#plan")).to_contain_text("Clusters: 0 of 2")
    dedicated = page.get_by_label("Type", exact=True).locator('option[value="dedicated"]')
    expect(dedicated).to_be_disabled()
    expect(page.locator("#f-type-hint")).to_contain_text("shared clusters only")
    expect(page.get_by_label("CPU", exact=True)).to_have_attribute("placeholder", "1")
    expect(page.locator("#f-cpu-hint")).to_contain_text("4 left in your pool")
    expect(page.locator("#f-memory-hint")).to_contain_text("8Gi left")
    shots.take(page, "create-form", full_page=True)

    page.get_by_label("Name", exact=True).fill("big")
    page.get_by_label("Display name", exact=True).fill("Too big")
    page.get_by_label("CPU", exact=True).fill("6")
    page.get_by_role("button", name="Create cluster").click()
    # The pool limit, at the field the server names, with how much too much.
    expect(page.get_by_label("CPU", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-cpu-error")).to_contain_text("exceeding it by 2")
    expect(page.locator("#f-cpu-error")).to_contain_text("request id")
    shots.take(page, "create-plan-limit", full_page=True)
    with live_console.api(key) as api:
        answer = api.get("/api/v1/tenants/smallco/clusters/big")
        assert answer.status_code == 404, "the refused cluster was created"


def test_the_console_reads_well_on_a_phone(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    with live_console.api() as api:
        api.post(
            "/api/v1/tenants/default/clusters",
            json={"name": "phone", "displayName": "On a phone", "type": "shared"},
        ).raise_for_status()
    page = tab.page
    page.set_viewport_size({"width": 375, "height": 720})
    tab.sign_in(live_console.key)
    row = page.get_by_role("row", name=re.compile(r"\bphone\b"))
    expect(row.get_by_text("Running", exact=True)).to_be_visible(timeout=RUNNING_DEADLINE_MS)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways at 375 px ({width} px wide)"
    shots.take(page, "clusters-phone", full_page=True)
    page.get_by_role("link", name="phone").click()
    expect(page.locator("#phase")).to_have_text("Running")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    shots.take(page, "cluster-phone", full_page=True)
    # Keyboard only: the skip link comes first and lands on the page's content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
