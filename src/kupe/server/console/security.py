"""Headers every console response carries, and the session cookie's attributes."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from kupe.server.services.console_credential import SESSION_COOKIE, SessionCredential

SIGNIN_COOKIE = "kupe_signin"
SIGNIN_COOKIE_SECONDS = 3600


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    """Scripts and styles from Kupe only (none inline), no frames, forms only to Kupe (and
    the OIDC provider, when sign-in goes there)."""
    forms = " ".join(["'self'", *form_targets])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action {forms}; frame-ancestors 'none'"
    )


def secure_headers(response: Response, csp: str, *, cache: str = "no-store") -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cache-Control"] = cache
    return response


def is_tls(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(
    response: Response, request: Request, session_id: str, lifetime: timedelta
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_tls(request)
    )


def session_credential(request: Request) -> SessionCredential | None:
    """The page request's session (reads only: a page GET never changes anything)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    return SessionCredential(session_id) if session_id else None


def signin_token(request: Request) -> str:
    """The sign-in form's token (double submit): a page of another site cannot sign a
    browser in as someone else, since it can neither read nor send this SameSite cookie."""
    existing = request.cookies.get(SIGNIN_COOKIE, "")
    return existing if 20 <= len(existing) <= 64 else secrets.token_urlsafe(24)


def set_signin_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=SIGNIN_COOKIE_SECONDS,
        path="/console/",
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
    )


def signin_token_ok(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, submitted)
