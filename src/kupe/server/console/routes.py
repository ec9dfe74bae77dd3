"""Wiring the console into the app: its routers and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from kupe.server.console import oidc, pages, signin
from kupe.server.console.render import STATIC_PREFIX
from kupe.server.console.security import content_security_policy, secure_headers


class ConsoleStatic(StaticFiles):
    """The console's own scripts, styles and icons, with the console's headers; URLs carry a
    digest of the files, so browsers may keep them long."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        cache = "public, max-age=86400" if response.status_code == 200 else "no-store"
        return secure_headers(response, content_security_policy(), cache=cache)


def install_console(app: FastAPI) -> None:
    """Serve the console at `/` (pages), `/t/{tenant}/...` and `/console/...`."""
    app.include_router(signin.router)
    app.include_router(oidc.router)
    app.mount(
        STATIC_PREFIX,
        ConsoleStatic(packages=[("kupe.server.console", "static")]),
        name="console-static",
    )
    # Last: its `/t/{tenant}/{slug}` pattern must not shadow anything else.
    app.include_router(pages.router)
