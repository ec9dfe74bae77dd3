"""The console's sections, and which optional ones this server offers.

A section whose API is not built yet (secrets, invoices, alerting) appears only once the
server has its routes, so the console grows with the API without a second switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.routing import BaseRoute


@dataclass(frozen=True)
class Section:
    slug: str
    label: str
    admin_only: bool = False
    # The API list route this section needs; None for the core sections, always present.
    needs: str | None = None
    # Where a generic section's objects are listed (relative to the tenant).
    api_path: str = ""


CORE_SECTIONS = (
    Section("clusters", "Clusters"),
    Section("apikeys", "API keys", admin_only=True),
    Section("members", "Members"),
    Section("tenant", "Tenant"),
)
OPTIONAL_SECTIONS = (
    Section("secrets", "Secrets", needs="/api/v1/tenants/{tenant}/secrets", api_path="/secrets"),
    Section(
        "invoices", "Invoices", needs="/api/v1/tenants/{tenant}/invoices", api_path="/invoices"
    ),
    Section(
        "alerting",
        "Alerting",
        needs="/api/v1/tenants/{tenant}/alertmanager/receivers",
        api_path="/alertmanager/receivers",
    ),
)
OPTIONAL_BY_SLUG = {section.slug: section for section in OPTIONAL_SECTIONS}


def _paths(routes: list[BaseRoute]) -> set[str]:
    found: set[str] = set()
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            found.add(path)
    return found


def offered(request: Request, section: Section) -> bool:
    """Whether this server has the API `section` needs (a route starting with it)."""
    if section.needs is None:
        return True
    needs = section.needs
    return any(path == needs or path.startswith(needs + "/") for path in _paths(request.app.routes))


def sections(request: Request, role: str) -> list[Section]:
    """The sections to link to for a caller of `role`."""
    return [
        section
        for section in (*CORE_SECTIONS, *OPTIONAL_SECTIONS)
        if offered(request, section) and (role == "admin" or not section.admin_only)
    ]
