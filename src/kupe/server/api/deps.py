"""Request-level dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from kupe.server.api.scopes import RequestScopes
from kupe.server.runtime import Runtime
from kupe.server.services.console_credential import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Credential,
    SessionCredential,
)
from kupe.server.services.wiring import Services

# Bearer auth is documented in OpenAPI by the app (see app.py): a security dependency here
# would cost every request a nested dependency resolution for a header AuthService parses.
BEARER_SCHEME = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A Kupe API key (kupe_...), or a member's OIDC token",
    }
}


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a thread hop
# on every request for a line of work.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_scopes(request: Request) -> RequestScopes:
    scopes: RequestScopes = request.app.state.scopes
    return scopes


async def get_services(request: Request) -> Services:
    runtime: Runtime = request.app.state.runtime
    return runtime.services


async def get_authorization(request: Request) -> Credential:
    """The `Authorization` header or, only when there is none, the console's session cookie
    with the CSRF token the request carried (a cross-site page cannot read or send it)."""
    header = request.headers.get("authorization")
    if header is not None:
        return header
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    return SessionCredential(
        session_id,
        request.headers.get(CSRF_HEADER),
        write=request.method not in _SAFE_METHODS,
    )


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ScopesDep = Annotated[RequestScopes, Depends(get_scopes)]
ServicesDep = Annotated[Services, Depends(get_services)]
AuthorizationDep = Annotated[Credential, Depends(get_authorization)]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='Optimistic lock: the ETag, e.g. "294810", or *.'),
]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", description="Answer 304 when this ETag is current."),
]
