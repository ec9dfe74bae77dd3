"""Signing in with the OIDC provider: authorization code with PKCE, state and nonce checked.

Nothing is stored for a sign-in in progress: the browser holds one random value in a
short-lived cookie, and state, nonce and PKCE verifier are all derived from it, so any
replica can finish the flow and no secret of it reaches the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kupe.core.errors import KupeError, ServiceUnavailable, Unauthorized
from kupe.server.console.context import runtime_of
from kupe.server.console.render import render
from kupe.server.console.security import is_tls, set_session_cookie
from kupe.server.services.oidc import OidcVerifier, email_of

router = APIRouter(prefix="/console/oidc", include_in_schema=False)
FLOW_COOKIE = "kupe_oidc"
FLOW_SECONDS = 600
_TENANT = re.compile(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
TOKEN_TIMEOUT_SECONDS = 10.0


def _derive(seed: str, purpose: str) -> str:
    digest = hmac.new(seed.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _verifier(request: Request) -> OidcVerifier | None:
    return runtime_of(request).services.auth.oidc


def oidc_configured(request: Request) -> bool:
    return _verifier(request) is not None


def oidc_form_targets(request: Request) -> tuple[str, ...]:
    """The provider's origin, which the sign-in form's redirect must be allowed to reach."""
    verifier = _verifier(request)
    if verifier is None:
        return ()
    parts = urlsplit(verifier.issuer)
    return (f"{parts.scheme}://{parts.netloc}",)


def _client(request: Request) -> tuple[str, str | None]:
    oidc = runtime_of(request).settings.oidc
    secret = oidc.client_secret.get_secret_value() if oidc.client_secret else None
    return oidc.client_id or oidc.audience or "", secret


def _redirect_uri(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/console/oidc/callback"


def _failure(request: Request, status: int, message: str) -> Response:
    return render(
        request,
        "error.html",
        status=status,
        title="Sign-in failed",
        viewer=None,
        section="",
        message=message,
        request_id=request.headers.get("x-request-id", ""),
    )


async def _endpoints(verifier: OidcVerifier) -> tuple[str, str]:
    document = await verifier.discovery()
    authorize, token = document.get("authorization_endpoint"), document.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise ServiceUnavailable("The OIDC provider's discovery document is incomplete")
    return authorize, token


@router.get("/start")
async def start(request: Request) -> Response:
    """Send the browser to the provider, for the tenant the person named."""
    verifier = _verifier(request)
    if verifier is None:
        return _failure(request, 404, "OIDC sign-in is not configured on this server.")
    tenant = request.query_params.get("tenant", "").strip().lower()
    if not _TENANT.match(tenant):
        return _failure(request, 400, "Enter the name of your tenant to sign in with OIDC.")
    try:
        authorize, _token = await _endpoints(verifier)
    except KupeError as exc:
        return _failure(request, exc.status, exc.message)
    seed = secrets.token_urlsafe(32)
    client_id, _secret = _client(request)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": _redirect_uri(request),
        "scope": "openid email profile",
        "state": f"{tenant}.{_derive(seed, 'state:' + tenant)}",
        "nonce": _derive(seed, "nonce"),
        "code_challenge": _challenge(_derive(seed, "pkce")),
        "code_challenge_method": "S256",
    }
    response = RedirectResponse(f"{authorize}?{urlencode(query)}", status_code=303)
    # Lax, not Strict: the provider's redirect back is a cross-site navigation.
    response.set_cookie(
        FLOW_COOKIE,
        seed,
        max_age=FLOW_SECONDS,
        path="/console/oidc/",
        httponly=True,
        samesite="lax",
        secure=is_tls(request),
    )
    return response


async def _exchange(request: Request, token_url: str, code: str, seed: str) -> dict[str, Any]:
    """The provider's tokens for `code`, proving the PKCE verifier."""
    client_id, secret = _client(request)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(request),
        "client_id": client_id,
        "code_verifier": _derive(seed, "pkce"),
    }
    try:
        async with httpx.AsyncClient(timeout=TOKEN_TIMEOUT_SECONDS) as client:
            if secret:
                auth = httpx.BasicAuth(client_id, secret)
                answer = await client.post(token_url, data=form, auth=auth)
            else:
                answer = await client.post(token_url, data=form)
    except httpx.HTTPError:
        raise ServiceUnavailable("The OIDC provider cannot be reached; retry shortly") from None
    if answer.status_code != 200:
        raise Unauthorized("The OIDC provider refused the sign-in code")
    try:
        tokens = answer.json()
    except ValueError:
        raise Unauthorized("The OIDC provider answered with no tokens") from None
    if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
        raise Unauthorized("The OIDC provider answered with no ID token")
    return tokens


@router.get("/callback")
async def callback(request: Request) -> Response:
    """Check state, exchange the code (PKCE), check the ID token and its nonce, sign in."""
    verifier = _verifier(request)
    if verifier is None:
        return _failure(request, 404, "OIDC sign-in is not configured on this server.")
    params = request.query_params
    seed = request.cookies.get(FLOW_COOKIE, "")
    refused = params.get("error")
    if refused:
        return _failure(request, 401, f"The OIDC provider said: {refused[:200]}")
    tenant, _, mac = params.get("state", "").partition(".")
    if (
        not seed
        or not _TENANT.match(tenant)
        or not hmac.compare_digest(mac, _derive(seed, "state:" + tenant))
    ):
        return _failure(request, 400, "This sign-in was not started here, or took too long.")
    code = params.get("code", "")
    if not code or len(code) > 2048:
        return _failure(request, 400, "The OIDC provider sent no sign-in code.")
    runtime = runtime_of(request)
    try:
        _authorize, token_url = await _endpoints(verifier)
        tokens = await _exchange(request, token_url, code, seed)
        claims = await verifier.verified_claims(tokens["id_token"], audience=_client(request)[0])
        if not hmac.compare_digest(str(claims.get("nonce", "")), _derive(seed, "nonce")):
            raise Unauthorized("The ID token's nonce does not match this sign-in")
        email = email_of(claims)
        async with runtime.db.write() as session:
            issued = await runtime.services.console_sessions.sign_in_member(session, tenant, email)
    except KupeError as exc:
        return _failure(request, exc.status, exc.message)
    target = f"/t/{issued.tenant}/clusters"
    # A page, not a redirect: the session cookie is SameSite=Strict, and a redirect would
    # still count as the provider's cross-site navigation and arrive without it.
    response = render(
        request, "continue.html", title="Signed in", viewer=None, section="", target=target
    )
    set_session_cookie(
        response, request, issued.session_id, runtime.services.console_sessions.absolute_timeout
    )
    response.delete_cookie(FLOW_COOKIE, path="/console/oidc/")
    return response
