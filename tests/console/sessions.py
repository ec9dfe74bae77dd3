"""A browser's side of the console without a browser: its own cookie jar against the
in-process app, the sign-in form, and the CSRF token read from a page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.support.harness import Kupe

_HIDDEN = re.compile(r'name="(token|csrf)" value="([^"]*)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


class Visitor:
    """One browser profile: cookies of its own, nothing shared with other visitors."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, key: str, *, next_path: str = "") -> httpx.Response:
        form = await self.client.get("/console/signin")
        assert form.status_code == 200, form.text
        token = dict(_HIDDEN.findall(form.text))["token"]
        return await self.client.post(
            "/console/signin", data={"api_key": key, "token": token, "next": next_path}
        )

    async def page(self, path: str) -> httpx.Response:
        response = await self.client.get(path)
        found = _META.search(response.text)
        if found:
            self.csrf = found.group(1)
        return response

    def write_headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    @property
    def session_cookie(self) -> str | None:
        return self.client.cookies.get("kupe_session")


@asynccontextmanager
async def visitor(kupe: Kupe, base_url: str = "http://kupe.test") -> AsyncIterator[Visitor]:
    transport = httpx.ASGITransport(app=kupe.app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield Visitor(client)
