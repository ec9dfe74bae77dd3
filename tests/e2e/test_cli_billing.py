"""`kupe invoices list|get` and `kupe tenant usage` against a real server (the sync SDK under
them), for the current month's draft."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kupe.sdk import Client
from tests.e2e.test_cli_tenancy import invoke
from tests.support.live_server import LiveKupe
from tests.support.server_process import wait_for

pytestmark = pytest.mark.slow


def test_invoices_and_usage_from_the_terminal(live_server: LiveKupe, tmp_path: Path) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    listed = invoke(live_server, tmp_path, "invoices", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    names = [item["name"] for item in json.loads(listed.stdout)["items"]]
    assert month in names
    assert names == sorted(names)

    def estimated() -> dict[str, object] | None:
        shown = invoke(live_server, tmp_path, "tenant", "usage", "-o", "json")
        assert shown.exit_code == 0, shown.output
        usage: dict[str, object] = json.loads(shown.stdout)
        return None if usage["stale"] else usage

    usage = wait_for("the first estimate", estimated, timeout=60)
    assert usage["periodStart"] == f"{month}-01T00:00:00Z"
    table = invoke(live_server, tmp_path, "tenant", "usage")
    assert "Estimated total:" in table.stdout
    got = invoke(live_server, tmp_path, "invoices", "get", month)
    assert got.exit_code == 0, got.output
    assert "Draft (running estimate)" in got.stdout
    bad = invoke(live_server, tmp_path, "invoices", "get", "2026-13")
    assert bad.exit_code == 1
    assert "HTTP 400" in bad.stderr
    with Client(live_server.url, api_key=live_server.key, tenant=live_server.tenant) as c:
        assert c.invoices.get(month).status.phase == "Draft"
        assert [i.name for i in c.invoices.list()] == names
