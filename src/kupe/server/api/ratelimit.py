"""Pure ASGI middleware applying the RateLimiter: 429 with Retry-After and the Kupe body."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kupe.core.errors import RateLimited
from kupe.server.api.errors import error_response
from kupe.server.services.ratelimit import RateLimiter, credential_key

# Probes and scrapes are never limited.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
TENANT_PREFIX = "/api/v1/tenants/"


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = str(client[0]) if client else "unknown"
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        credential = credential_key(authorization) if authorization else None
        tenant_scoped = path.startswith(TENANT_PREFIX)
        refusal = self.limiter.check(ip, credential, authenticating=tenant_scoped)
        if refusal is not None:
            error = RateLimited(
                f"{refusal.reason}; retry after {refusal.retry_after} s",
                headers={"Retry-After": str(refusal.retry_after)},
            )
            await error_response(error)(scope, receive, send)
            return
        if not tenant_scoped:
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.limiter.record(ip, credential, status)
