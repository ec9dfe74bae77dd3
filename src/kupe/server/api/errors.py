"""The one place errors become HTTP responses: always the Kupe error body, never internals."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kupe.core.errors import (
    AlreadyExists,
    BadRequest,
    InternalError,
    KupeError,
    MalformedJson,
    MethodNotAllowed,
    NotFound,
    NotImplementedYet,
    PayloadTooLarge,
    ServiceUnavailable,
    ValidationFailed,
)
from kupe.schemas.common import ErrorBody

log = structlog.get_logger("kupe.api")

ERROR_DESCRIPTIONS = {
    304: "Not modified: the ETag in If-None-Match is current",
    400: "Malformed JSON, unknown field, validation failure or immutable field",
    401: "Missing, malformed, unknown, expired or revoked credential",
    403: "Not a member of this tenant, admin access required, or a plan limit",
    404: "Tenant, resource or route not found",
    409: "Conflicts with the resource's state",
    412: "If-Match does not match the current ETag",
    410: "A watch from a resourceVersion older than the event retention (EXPIRED): list again",
    413: "Request body larger than 1 MiB",
    415: "Request body is not application/json",
    429: "Rate limited; see Retry-After",
    500: "Internal error; the body never carries internals",
    501: "Not available on this installation (NOT_IMPLEMENTED, or a capability its provider lacks)",
    503: "Not ready yet, or a dependency is down; see Retry-After",
}


# Routes under these resources belong to the contract (API.md): one this installation has not
# built answers 501, never 404, which clients read as "deleted".
CONTRACT_PREFIXES = re.compile(
    r"\A/api/v1/tenants/[^/]+/"
    r"(clusters|apikeys|members|secrets|invoices|alertmanager|webhooks|audit)"
    # ... but no dot-segments: a path that walks up is not a route of anything.
    r"(?!.*(?:/|\A)\.\.?(?:/|\Z))(/|\Z)"
)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error status codes, with the error body."""
    out: dict[int | str, dict[str, Any]] = {}
    # Every API route is rate limited and may fail; /healthz, /readyz and /metrics use none of this.
    for code in (*codes, 429, 500):
        if code == 304:
            out[code] = {"description": ERROR_DESCRIPTIONS[code]}
        else:
            out[code] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
    return out


def error_response(error: KupeError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc[1:] if not isinstance(p, int) or True]
    return ".".join(parts) if parts else None


def validation_error(exc: RequestValidationError) -> KupeError:
    """Turn FastAPI's validation report into one clear 400 naming the first bad field."""
    errors = exc.errors()
    if not errors:
        return ValidationFailed()
    first = errors[0]
    kind = first.get("type", "")
    loc = tuple(first.get("loc", ()))
    field = _field(loc)
    if kind == "json_invalid":
        return MalformedJson()
    where = field or "request body"
    if loc and loc[0] in ("header", "query", "path") and field:
        where = field
    if kind == "extra_forbidden":
        return ValidationFailed(f"unknown field {field!r}", field=field)
    if kind == "missing":
        if field is None:
            return ValidationFailed("request body is required")
        return ValidationFailed(f"{where} is required", field=field)
    if kind == "kupe_invalid":
        return ValidationFailed(str(first.get("msg")), field=field)
    if kind in ("model_attributes_type", "dict_type", "model_type") and field is None:
        return ValidationFailed("request body must be a JSON object")
    message = str(first.get("msg", "is invalid"))
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ValidationFailed(f"{where}: {message}", field=field)


# SQLSTATE classes meaning "the server is not there for you": connection exceptions (08),
# insufficient resources such as too many connections (53), and operator intervention (57P:
# shutting down, terminated, starting up).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def _database_unavailable(exc: Exception) -> bool:
    """A driver error that means the database is away, not that the query was wrong: wrapped by
    SQLAlchemy, or raised by asyncpg itself on the hot-read path (ADR 0006)."""
    driver_error: BaseException | None = exc
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        driver_error = exc.orig
    elif not isinstance(exc, asyncpg.PostgresError):
        return False
    sqlstate = getattr(driver_error, "sqlstate", None) or getattr(driver_error, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def translate(exc: Exception) -> KupeError:
    """Map anything raised while handling a request to a Kupe error."""
    if isinstance(exc, KupeError):
        return exc
    if isinstance(exc, RequestValidationError):
        return validation_error(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        return AlreadyExists("Resource already exists")
    if isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | ConnectionError
        | TimeoutError
        | OSError,
    ) or _database_unavailable(exc):
        return ServiceUnavailable(
            "The database is unavailable; retry shortly", headers={"Retry-After": "2"}
        )
    return InternalError()


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """The `Allow` value for the request's path: every method a route fully matches there."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI) -> None:
    async def on_kupe_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(translate(exc))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: KupeError
        if exc.status_code == 404:
            error = (
                NotImplementedYet()
                if CONTRACT_PREFIXES.match(request.url.path)
                else NotFound("Route not found")
            )
        elif exc.status_code == 413:
            error = PayloadTooLarge()
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"Method {request.method} is not allowed on this route")
        elif 400 <= exc.status_code < 500:
            error = BadRequest(str(exc.detail))
            error.status = exc.status_code
        else:
            error = InternalError()
        response = error_response(error)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # Starlette names only the first route whose path matched; the path may have more.
            response.headers["Allow"] = allowed_methods(request)
        return response

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = translate(exc)
        if isinstance(error, InternalError):
            log.error("request.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
        else:
            log.warning("request.dependency_error", error_type=type(exc).__name__)
        return error_response(error)

    app.add_exception_handler(KupeError, on_kupe_error)
    app.add_exception_handler(RequestValidationError, on_kupe_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    # Dependency failures are answered where they happen; anything else unexpected is caught by
    # RequestMiddleware, which answers 500 with the request id and logs the traceback.
    for dependency_error in (
        sa_exc.DBAPIError,
        sa_exc.TimeoutError,
        asyncpg.PostgresError,
        OSError,
        TimeoutError,
    ):
        app.add_exception_handler(dependency_error, on_unexpected)
