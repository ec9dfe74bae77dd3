"""Who is looking at a console page: the session's caller, checked as the API checks it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kupe.core.errors import Unauthorized
from kupe.server.api.scopes import RequestScopes
from kupe.server.console.nav import Section, sections
from kupe.server.console.security import clear_session_cookie, session_credential
from kupe.server.runtime import Runtime
from kupe.server.services.console_credential import SESSION_COOKIE
from kupe.server.services.console_session import csrf_token_for


@dataclass(frozen=True)
class Viewer:
    """The signed-in caller of a page, and what the page needs to act for them."""

    tenant: str
    role: str
    actor: str
    csrf: str
    nav: list[Section]

    @property
    def admin(self) -> bool:
        return self.role == "admin"


class SignInNeeded(Exception):
    """No session, or one that has ended: the page answers with the sign-in form."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def viewer(request: Request, tenant: str) -> Viewer:
    """The page's caller in `tenant`, authenticated by the same scope as the API's reads;
    KupeErrors (another tenant, a database outage) propagate to the page's error view."""
    credential = session_credential(request)
    if credential is None:
        raise SignInNeeded()
    scopes: RequestScopes = request.app.state.scopes
    try:
        async with scopes.reading(credential, tenant) as (_session, principal):
            pass
    except Unauthorized as exc:
        raise SignInNeeded(exc.message) from None
    return Viewer(
        tenant=principal.tenant.name,
        role=principal.role,
        actor=principal.actor,
        csrf=csrf_token_for(credential.session_id),
        nav=sections(request, principal.role),
    )


async def session_tenant(request: Request) -> str | None:
    """The tenant of the browser's session, if it is still valid."""
    credential = session_credential(request)
    if credential is None:
        return None
    runtime = runtime_of(request)
    async with runtime.db.read() as session:
        return await runtime.services.console_sessions.tenant_of(session, credential)


def to_signin(request: Request, reason: str = "") -> Response:
    """Back to the sign-in form, remembering where the person was going."""
    target = "/console/signin?next=" + quote(request.url.path, safe="/")
    if reason:
        target += "&ended=1"
    response = RedirectResponse(target, status_code=303)
    if request.cookies.get(SESSION_COOKIE):
        clear_session_cookie(response, request)
    return response
