"""The console's sections, and which optional ones this server offers.

A section appears only where the server has its API (its routes), so a server built without
one shows no dead link; secrets appear only where OpenBao is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import Match


@dataclass(frozen=True)
class Section:
    slug: str
    label: str
    admin_only: bool = False
    # The API list route this section needs; None for the core sections, always present.
    needs: str | None = None
    # A capability the server must also have switched on (app.state.features), for APIs
    # that exist on every server but need something configured (secrets need OpenBao).
    feature: str | None = None


CORE_SECTIONS = (
    Section("clusters", "Clusters"),
    Section("apikeys", "API keys", admin_only=True),
    Section("members", "Members"),
    Section("tenant", "Tenant"),
)
OPTIONAL_SECTIONS = (
    Section(
        "secrets",
        "Secrets",
        needs="/api/v1/tenants/{tenant}/secrets",
        feature="secrets",
    ),
    Section("invoices", "Invoices", needs="/api/v1/tenants/{tenant}/invoices"),
    Section(
        "alerting",
        "Alerting",
        needs="/api/v1/tenants/{tenant}/alertmanager/receivers",
    ),
)
OPTIONAL_BY_SLUG = {section.slug: section for section in OPTIONAL_SECTIONS}


def _served(request: Request, path: str) -> bool:
    """Whether one of the app's routes fully matches a GET of `path` (asked through the routes'
    own matching, which works however the framework nests included routers)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes)


def offered(request: Request, section: Section) -> bool:
    """Whether this server has the API `section` needs (the route, or one below it)."""
    if section.needs is None:
        return True
    features: dict[str, bool] = getattr(request.app.state, "features", {})
    if section.feature is not None and not features.get(section.feature, False):
        return False
    needs = section.needs.replace("{tenant}", "t")
    return _served(request, needs) or _served(request, needs + "/x")


def sections(request: Request, role: str) -> list[Section]:
    """The sections to link to for a caller of `role`."""
    return [
        section
        for section in (*CORE_SECTIONS, *OPTIONAL_SECTIONS)
        if offered(request, section) and (role == "admin" or not section.admin_only)
    ]
