"""Signing in (an API key exchanged for a session) and out (the session deleted)."""

from __future__ import annotations

import hmac
import re
from urllib.parse import parse_qs

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kupe.core.errors import KupeError
from kupe.server.console.context import runtime_of, session_tenant
from kupe.server.console.oidc import oidc_configured, oidc_form_targets
from kupe.server.console.render import render
from kupe.server.console.security import (
    clear_session_cookie,
    session_credential,
    set_session_cookie,
    set_signin_cookie,
    signin_token,
    signin_token_ok,
)
from kupe.server.services.console_session import IssuedSession, csrf_token_for

router = APIRouter(prefix="/console", include_in_schema=False)
_NEXT = re.compile(r"\A/t/[a-z0-9-]{1,63}(/[A-Za-z0-9._~/-]*)?\Z")
MAX_FIELD = 4096


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body, first value of each field (the body is at most 1 MiB)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        parsed = parse_qs(body, keep_blank_values=True, max_num_fields=20)
    except ValueError:  # more fields than any console form has: treated as an empty form
        return {}
    return {name: values[0][:MAX_FIELD] for name, values in parsed.items() if values}


def safe_next(value: str, tenant: str) -> str:
    """Where to go after signing in: a console page of the session's tenant, else its list."""
    if _NEXT.match(value) and value.split("/")[2] == tenant and ".." not in value:
        return value
    return f"/t/{tenant}/clusters"


def signin_page(
    request: Request, *, status: int = 200, error: str = "", next_path: str = ""
) -> Response:
    token = signin_token(request)
    response = render(
        request,
        "signin.html",
        status=status,
        title="Sign in",
        viewer=None,
        section="",
        token=token,
        error=error,
        next_path=next_path,
        ended=request.query_params.get("ended") == "1",
        oidc=oidc_configured(request),
        request_id=request.headers.get("x-request-id", ""),
        form_targets=oidc_form_targets(request),
    )
    set_signin_cookie(response, request, token)
    return response


def signed_in(request: Request, issued: IssuedSession, next_path: str) -> Response:
    """Off to the console with the new session's cookie (HttpOnly, SameSite=Strict)."""
    runtime = runtime_of(request)
    response = RedirectResponse(safe_next(next_path, issued.tenant), status_code=303)
    set_session_cookie(
        response,
        request,
        issued.session_id,
        runtime.services.console_sessions.absolute_timeout,
    )
    return response


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    tenant = await session_tenant(request)
    if tenant is not None:
        next_path = request.query_params.get("next", "")
        return RedirectResponse(safe_next(next_path, tenant), status_code=303)
    return signin_page(request, next_path=request.query_params.get("next", ""))


@router.post("/signin")
async def signin(request: Request) -> Response:
    fields = await form_fields(request)
    next_path = fields.get("next", "")
    if not signin_token_ok(request, fields.get("token", "")):
        return signin_page(
            request,
            status=403,
            error="The sign-in form had expired. Please try again.",
            next_path=next_path,
        )
    raw_key = fields.get("api_key", "").strip()
    if not raw_key:
        return signin_page(request, status=400, error="Enter an API key.", next_path=next_path)
    runtime = runtime_of(request)
    try:
        async with runtime.db.write() as session:
            issued = await runtime.services.console_sessions.sign_in_with_key(session, raw_key)
    except KupeError as exc:
        return signin_page(request, status=exc.status, error=exc.message, next_path=next_path)
    return signed_in(request, issued, next_path)


@router.post("/signout")
async def signout(request: Request) -> Response:
    """End the session on the server (the form carries its CSRF token), then forget it."""
    fields = await form_fields(request)
    credential = session_credential(request)
    response = RedirectResponse("/console/signin", status_code=303)
    if credential is not None:
        expected = csrf_token_for(credential.session_id)
        if not hmac.compare_digest(expected, fields.get("csrf", "")):
            return render(
                request,
                "error.html",
                status=403,
                title="Error",
                viewer=None,
                section="",
                message="Sign-out needs the page's CSRF token; go back and use its button.",
                request_id=request.headers.get("x-request-id", ""),
            )
        runtime = runtime_of(request)
        async with runtime.db.write() as session:
            await runtime.services.console_sessions.sign_out(session, credential.session_id)
    clear_session_cookie(response, request)
    return response
