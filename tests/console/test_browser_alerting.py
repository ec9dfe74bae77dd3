"""In a real browser: a receiver is added (its URL comes back as <secret>), one Alertmanager
refuses is shown with Alertmanager's message, routes are saved, a receiver a route uses cannot
be deleted, and the effective configuration shows no credential."""

from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.console.conftest import LiveConsole, Shots, Tab

HOOK = "https://hooks.example.com/alerts/T0KEN-in-the-url"


def test_receivers_and_routes_from_the_console(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    key = live_console.tenant("alarm", "pro")
    page = tab.page
    tab.sign_in(key)
    page.get_by_role("link", name="Alerting").click()
    expect(page.get_by_role("heading", name="Alerting", exact=True)).to_be_visible()
    expect(page.locator("#status")).to_have_text("0 receivers")

    page.get_by_label("Receiver name").fill("oncall")
    page.get_by_label("Receiver (JSON)").fill(json.dumps({"webhook_configs": [{"url": HOOK}]}))
    page.get_by_role("button", name="Save receiver").click()
    row = page.get_by_role("row", name=re.compile(r"^oncall "))
    expect(row).to_contain_text("webhook")
    expect(page.locator("#config")).to_contain_text("<secret>")
    expect(page.locator("#config")).to_contain_text("oncall")

    # Alertmanager itself refuses a Slack receiver without an API URL: its message, at the text.
    page.get_by_label("Receiver name").fill("chat")
    page.get_by_label("Receiver (JSON)").fill(json.dumps({"slack_configs": [{"channel": "#x"}]}))
    page.get_by_role("button", name="Save receiver").click()
    expect(page.get_by_label("Receiver (JSON)")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#r-body-error")).to_contain_text("Slack API URL")
    expect(page.get_by_role("row", name=re.compile(r"^chat "))).to_have_count(0)

    routes = [{"receiver": "oncall", "matchers": ['severity="critical"']}]
    page.get_by_label("Routes (JSON)").fill(json.dumps(routes))
    page.get_by_role("button", name="Save routes").click()
    expect(page.locator("#config")).to_contain_text("severity")
    row.get_by_role("button", name="Delete oncall").click()
    row.get_by_role("button", name="Confirm deleting oncall").click()
    expect(page.locator("#errors")).to_contain_text("change the routes first")
    expect(page.get_by_role("row", name=re.compile(r"^oncall "))).to_have_count(1)
    shots.take(page, "alerting", full_page=True)
    assert "T0KEN-in-the-url" not in page.content(), "a credential reached the page"
    with live_console.api(key) as api:
        routes_now = api.get("/api/v1/tenants/alarm/alertmanager/routes").json()
    assert routes_now["items"][0]["receiver"] == "oncall"
