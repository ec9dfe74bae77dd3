"""Console pages: each is a server-rendered shell for its section; the section's script loads
and changes the data through the JSON API."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kupe.core.errors import KupeError
from kupe.server.console.context import SignInNeeded, Viewer, session_tenant, to_signin, viewer
from kupe.server.console.nav import OPTIONAL_BY_SLUG, offered
from kupe.server.console.render import render

router = APIRouter(include_in_schema=False)
_NAME = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")


def error_page(
    request: Request, status: int, message: str, viewer: Viewer | None = None
) -> Response:
    return render(
        request,
        "error.html",
        status=status,
        title="Error",
        viewer=viewer,
        section="",
        message=message,
        request_id=request.headers.get("x-request-id", ""),
    )


async def page(
    request: Request, tenant: str, template: str, section: str, title: str, **context: Any
) -> Response:
    """Render `template` for the session's caller in `tenant`, or send them to sign in."""
    if not _NAME.match(tenant):
        return error_page(request, 404, "There is no such page.")
    try:
        who = await viewer(request, tenant)
    except SignInNeeded as exc:
        return to_signin(request, exc.reason)
    except KupeError as exc:
        return error_page(request, exc.status, exc.message)
    return render(request, template, title=title, viewer=who, section=section, **context)


@router.get("/")
async def home(request: Request) -> Response:
    tenant = await session_tenant(request)
    if tenant is None:
        return RedirectResponse("/console/signin", status_code=303)
    return RedirectResponse(f"/t/{tenant}/clusters", status_code=303)


@router.get("/t/{tenant}")
async def tenant_home(request: Request, tenant: str) -> Response:
    if not _NAME.match(tenant):
        return error_page(request, 404, "There is no such page.")
    return RedirectResponse(f"/t/{tenant}/clusters", status_code=303)


@router.get("/t/{tenant}/clusters")
async def clusters(request: Request, tenant: str) -> Response:
    return await page(request, tenant, "clusters.html", "clusters", "Clusters")


@router.get("/t/{tenant}/clusters/new")
async def create_cluster(request: Request, tenant: str) -> Response:
    return await page(request, tenant, "create.html", "clusters", "Create a cluster")


@router.get("/t/{tenant}/clusters/{name}")
async def cluster(request: Request, tenant: str, name: str) -> Response:
    if not _NAME.match(name):
        return error_page(request, 404, "There is no cluster of that name.")
    return await page(request, tenant, "cluster.html", "clusters", name, cluster=name)


@router.get("/t/{tenant}/apikeys")
async def api_keys(request: Request, tenant: str) -> Response:
    return await page(request, tenant, "apikeys.html", "apikeys", "API keys")


@router.get("/t/{tenant}/members")
async def members(request: Request, tenant: str) -> Response:
    return await page(request, tenant, "members.html", "members", "Members")


@router.get("/t/{tenant}/tenant")
async def tenant_page(request: Request, tenant: str) -> Response:
    return await page(request, tenant, "tenant.html", "tenant", "Tenant")


@router.get("/t/{tenant}/secrets")
async def secrets(request: Request, tenant: str) -> Response:
    if not offered(request, OPTIONAL_BY_SLUG["secrets"]):
        return error_page(request, 404, "There is no such page.")
    return await page(request, tenant, "secrets.html", "secrets", "Secrets")


@router.get("/t/{tenant}/invoices")
async def invoices(request: Request, tenant: str) -> Response:
    if not offered(request, OPTIONAL_BY_SLUG["invoices"]):
        return error_page(request, 404, "There is no such page.")
    return await page(request, tenant, "invoices.html", "invoices", "Invoices")


@router.get("/t/{tenant}/alerting")
async def alerting(request: Request, tenant: str) -> Response:
    if not offered(request, OPTIONAL_BY_SLUG["alerting"]):
        return error_page(request, 404, "There is no such page.")
    return await page(request, tenant, "alerting.html", "alerting", "Alerting")


@router.get("/t/{tenant}/{slug}")
async def unknown_section(request: Request, tenant: str, slug: str) -> Response:
    """Any other page of a tenant: the console's own 404 page, not the API's JSON."""
    return error_page(request, 404, "There is no such page.")
