"""Pure ASGI middleware that gives every mutating tenant request an audit context and, as the
response starts, records what the request's own write transaction did not (see
services/audit.py). Failed authentication goes to the operator's log, never to a tenant's."""

from __future__ import annotations

from typing import Any

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kupe.core.errors import KupeError
from kupe.server.api.deps import get_authorization
from kupe.server.runtime import Runtime
from kupe.server.services import audit
from kupe.server.services.audit import MUTATING_METHODS, TENANT_ROUTE, AuditContext, RouteInfo

TENANT_PREFIX = "/api/v1/tenants/"
log = structlog.get_logger("kupe.security")


def _route_info(scope: Scope) -> RouteInfo | None:
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or not template.startswith(TENANT_ROUTE):
        return None
    params = {str(k): str(v) for k, v in (scope.get("path_params") or {}).items()}
    return RouteInfo(template, params, int(getattr(route, "status_code", None) or 200))


class AuditMiddleware:
    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING_METHODS
            or not str(scope.get("path", "")).startswith(TENANT_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        context = AuditContext(
            method=scope["method"],
            client_ip=str(client[0]) if client else "unknown",
            route=lambda: _route_info(scope),
        )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                request_id = headers.get(b"x-request-id", b"").decode("latin-1")
                await self._complete(context, scope, request_id, int(message["status"]))
            await send(message)

        token = audit.begin(context)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            audit.end(token)

    async def _complete(
        self, context: AuditContext, scope: Scope, request_id: str, status: int
    ) -> None:
        info = context.route()
        # Refusals by the rate limiter are not recorded: a flood must not become writes.
        if info is None or status == 429:
            return
        if context.principal is None:
            if status < 400:
                return
            # Refused before the route authenticated the caller (a body that fails
            # validation, say): the caller is identified here, once.
            if not await self._identify(context, scope, info, status, request_id):
                return
        try:
            await self.runtime.services.audit.complete(context, request_id, status)
        except Exception as exc:  # the answer stands; the operator learns of the gap
            log.error(
                "audit.record_failed",
                request_id=request_id,
                route=info.template,
                error=type(exc).__name__,
            )

    async def _identify(
        self, context: AuditContext, scope: Scope, info: RouteInfo, status: int, request_id: str
    ) -> bool:
        tenant = info.params.get("tenant", "")
        failed = status in (401, 403)
        if not failed:
            try:
                credential = await get_authorization(Request(scope))
                async with self.runtime.db.read() as session:
                    context.principal = await self.runtime.services.auth.authenticate(
                        session, credential, tenant
                    )
                return True
            except KupeError:
                failed = True
            except Exception as exc:
                log.error("audit.identify_failed", request_id=request_id, error=type(exc).__name__)
                return False
        log.warning(
            "auth.failed",
            tenant=tenant,
            method=context.method,
            route=info.template,
            status=status,
            client_ip=context.client_ip,
            request_id=request_id,
        )
        return False
