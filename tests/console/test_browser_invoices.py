"""In a real browser: the invoices page shows this month's draft with the server's own figures
(never re-computed in the page), its line items, and the running estimate of the month."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from tests.console.conftest import LiveConsole, Shots, Tab
from tests.support.server_process import wait_for


def _estimated(live_console: LiveConsole, key: str) -> dict[str, Any]:
    """The tenant once its first estimate is in (not stale), and this month's invoice."""
    with live_console.api(key) as api:

        def current() -> dict[str, Any] | None:
            usage = api.get("/api/v1/tenants/ledger").json()["status"].get("currentUsage")
            return usage if usage and not usage["stale"] else None

        usage = wait_for("the first estimate", current, timeout=120)
        month = datetime.now(UTC).strftime("%Y-%m")
        invoice: dict[str, Any] = api.get(f"/api/v1/tenants/ledger/invoices/{month}").json()
    return {"usage": usage, "invoice": invoice}


def test_the_invoices_page_shows_the_draft_and_the_estimate(
    tab: Tab, live_console: LiveConsole, shots: Shots
) -> None:
    key = live_console.tenant("ledger", "pro")
    figures = _estimated(live_console, key)
    invoice, usage = figures["invoice"], figures["usage"]
    page = tab.page
    tab.sign_in(key)
    page.get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    row = page.get_by_role("row", name=re.compile(rf"^{invoice['name']} "))
    expect(row).to_contain_text("Draft")
    status = invoice["status"]
    expect(row).to_contain_text(f"{status['total']} {status['currency']}")
    expect(row).to_contain_text(f"{status['subtotal']} {status['currency']}")
    if status["lineItems"]:
        row.get_by_text(f"Line items of {invoice['name']}").click()
        first = status["lineItems"][0]
        expect(row).to_contain_text(first["description"])
        expect(row).to_contain_text(f"{first['cost']} {status['currency']}")
    figures_list = page.locator("#usage-figures")
    expect(figures_list).to_contain_text(f"{usage['estimatedTotal']} {usage['currency']}")
    expect(page.locator("#usage")).to_contain_text("Updated")
    shots.take(page, "invoices", full_page=True)
