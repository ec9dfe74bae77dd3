"""Jinja2 rendering of console pages, with the console's security headers."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from kupe import __version__
from kupe.server.console.security import content_security_policy, secure_headers

STATIC_PREFIX = "/console/static"


@functools.cache
def static_version() -> str:
    """A digest of the static files: their URLs change when they do, so caches never serve
    a stale script to a new page."""
    digest = hashlib.sha256(__version__.encode())
    root = resources.files("kupe.server.console") / "static"
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                stack.append(entry)
            else:
                digest.update(entry.name.encode())
                digest.update(entry.read_bytes())
    return digest.hexdigest()[:12]


def static_url(path: str) -> str:
    return f"{STATIC_PREFIX}/{path}?v={static_version()}"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kupe.server.console", "templates"),
        autoescape=select_autoescape(("html",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    form_targets: tuple[str, ...] = (),
    **context: Any,
) -> HTMLResponse:
    """A page: the template with `context`, never cached (it carries the CSRF token)."""
    html = environment().get_template(template).render(request=request, **context)
    response = HTMLResponse(html, status_code=status)
    secure_headers(response, content_security_policy(form_targets))
    return response
