"""Browser tests: Debian's Chromium driven by Playwright against a real `kupe serve` on
loopback. A browser that cannot be launched fails these tests; it never skips them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Route,
    expect,
    sync_playwright,
)

from tests.support.live_server import FAST
from tests.support.openbao import OpenBaoServer
from tests.support.server_process import KUPE, ProcessGroup, process_group

CHROMIUM = os.environ.get("KUPE_TEST_CHROMIUM", "/usr/bin/chromium")
# Headless, and nothing of Chromium's own reaching for the network (none is reachable here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
# Assertions wait for what the page will show; on a busy 2-core machine that can take longer
# than Playwright's default 5 s (a deadline, never a transient state).
expect.set_options(timeout=15_000)
ARTIFACTS = Path(os.environ.get("KUPE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@dataclass
class LiveConsole:
    """The server under test, its bootstrap admin key (tenant `default`) and its group."""

    url: str
    key: str
    group: ProcessGroup
    tenants: dict[str, str] = field(default_factory=dict)

    def api(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30
        )

    def tenant(self, name: str, plan: str) -> str:
        """An admin key of tenant `name` (created once, by the operator's command)."""
        if name not in self.tenants:
            out = subprocess.run(
                [
                    *KUPE,
                    "admin",
                    "create-tenant",
                    name,
                    "--display-name",
                    name.title(),
                    "--contact-email",
                    f"owner@{name}.example.com",
                    "--plan",
                    plan,
                ],
                env={**os.environ, **self.group.base_env},
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            self.tenants[name] = json.loads(out.stdout)["apiKey"]["key"]
        return self.tenants[name]


@pytest.fixture(scope="session")
def live_console(
    tmp_path_factory: pytest.TempPathFactory, openbao: OpenBaoServer
) -> Iterator[LiveConsole]:
    workdir = tmp_path_factory.mktemp("console-server")
    openbao.ensure_running()
    vault = {f"KUPE_{k.upper()}": v for k, v in openbao.kupe_credential().items()}
    settings = {**FAST, **vault, "KUPE_SECRET_RESYNC_SECONDS": "1"}
    with process_group(workdir, settings) as group:
        server = group.serve().wait_ready()
        yield LiveConsole(server.url, group.api_key(), group)
        server.stop()


# Per module, not per session: Playwright's sync API keeps an event loop of its own running
# until it stops, and the async tests that a worker runs after this module need none running.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(
                f"No browser can be launched from {CHROMIUM} ({exc.message.splitlines()[0]}); "
                "install Debian's chromium (apt-get install -y chromium)"
            )
        yield browser
        browser.close()


class Shots:
    """Screenshots of every page a test visits, numbered, in the artifacts directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str, *, full_page: bool = False) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(ARTIFACTS / "console" / request.node.name)


def keep_on_loopback(context: BrowserContext) -> None:
    """Let the browser reach only this machine's loopback servers; anything else a page asks
    for (a provider's web font, say) is refused inside the browser, never sent."""

    def route(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1") or route.request.url.startswith("blob:"):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", route)


@dataclass
class Tab:
    """A fresh browser profile (no cookies) with one page, watched for script errors."""

    page: Page
    errors: list[str]
    base: str

    def sign_in(self, key: str) -> None:
        self.page.goto(f"{self.base}/")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/t/*/clusters")


@pytest.fixture
def tab(chromium: Browser, live_console: LiveConsole) -> Iterator[Tab]:
    context = chromium.new_context(
        viewport={"width": 1100, "height": 760}, accept_downloads=True, base_url=live_console.url
    )
    context.set_default_timeout(15_000)
    keep_on_loopback(context)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(message: ConsoleMessage) -> None:
        # The browser reports every non-2xx answer as a console error; those are expected
        # (404 for a timeline this server lacks, refused writes). Script errors are not.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    yield Tab(page, errors, live_console.url)
    context.close()
    assert errors == [], f"the page reported script errors: {errors}"
