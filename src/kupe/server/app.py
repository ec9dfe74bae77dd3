"""The FastAPI application: `create_app(settings)` builds one, with its runtime in app.state."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from kupe import __version__
from kupe.core.clock import Clock
from kupe.server.api import (
    alerting,
    apikeys,
    audit,
    clusters,
    events,
    invoices,
    members,
    plans,
    secrets,
    system,
    tenants,
    tokenreview,
    versions,
    webhooks,
)
from kupe.server.api.audit_middleware import AuditMiddleware
from kupe.server.api.deps import BEARER_SCHEME
from kupe.server.api.docs import install_docs
from kupe.server.api.errors import install_error_handlers
from kupe.server.api.middleware import RequestMiddleware
from kupe.server.api.ratelimit import RateLimitMiddleware
from kupe.server.api.scopes import RequestScopes
from kupe.server.console import install_console
from kupe.server.providers.base import Provider
from kupe.server.runtime import Runtime, announce_bootstrap
from kupe.server.settings import Settings

DESCRIPTION = """The Kupe API: managed Kubernetes clusters for tenants.

Every error response carries the Kupe error body `{"error", "code", "field"?}`.
"""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    provider: Provider | None = None,
    run_reconciler: bool | None = None,
    bootstrap: bool = False,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the API for `settings`; the lifespan migrates, bootstraps and runs the reconciler.
    `freeze_heap` is for a process that exists to serve this app (`kupe serve`), see
    `settle_heap`."""
    runtime = Runtime(settings, clock=clock, provider=provider, run_reconciler=run_reconciler)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        result = await runtime.start(bootstrap=bootstrap)
        if result is not None:
            announce_bootstrap(result)
        if freeze_heap:
            settle_heap()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Kupe API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served by install_docs, from local assets rather than a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.scopes = RequestScopes(runtime)
    # Optional capabilities this process can serve (the console links only to those).
    app.state.features = {"secrets": runtime.vault is not None}
    app.state.end_streams = runtime.events.hub.end_streams
    install_error_handlers(app)
    install_docs(app)
    app.include_router(system.router)
    app.include_router(plans.router)
    app.include_router(versions.router)
    app.include_router(clusters.router)
    app.include_router(events.router)
    app.include_router(tenants.router)
    app.include_router(apikeys.router)
    app.include_router(members.router)
    app.include_router(secrets.router)
    app.include_router(alerting.router)
    app.include_router(invoices.router)
    app.include_router(tokenreview.router)
    app.include_router(audit.router)
    app.include_router(webhooks.router)
    install_console(app)
    # Added first, so it runs inside RequestMiddleware: a 429 gets a request id and a log line.
    app.add_middleware(RateLimitMiddleware, limiter=runtime.rate_limiter)
    app.add_middleware(RequestMiddleware, metrics=runtime.metrics)
    # Outermost: it sees every refusal of the layers inside, with the request id they gave.
    app.add_middleware(AuditMiddleware, runtime=runtime)
    app.openapi = _kupe_openapi(app)  # type: ignore[method-assign]
    return app


def settle_heap() -> None:
    """Move everything allocated while starting (modules, routes, schemas: long-lived) out of
    the garbage collector's sight. A full collection otherwise walks all of it again, pausing
    every request in flight for tens of milliseconds; `gc.freeze` is made for exactly this."""
    gc.collect()
    gc.freeze()


def create_reconciler_app(
    settings: Settings, *, clock: Clock | None = None, provider: Provider | None = None
) -> FastAPI:
    """`kupe reconciler` with probes: the reconciler plus only /healthz, /readyz and /metrics."""
    runtime = Runtime(settings, clock=clock, provider=provider, run_reconciler=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Kupe reconciler",
        version=__version__,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    app.include_router(system.router)
    return app


def _kupe_openapi(app: FastAPI) -> Any:
    """FastAPI's document, adjusted: Kupe answers validation errors with 400 and its own body
    (FastAPI's 422 entries go), and every tenant route takes a Bearer credential."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        for route, path in schema.get("paths", {}).items():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
                if route.startswith("/api/v1/tenants/"):
                    operation["security"] = [{name: []} for name in BEARER_SCHEME]
        schema.setdefault("components", {})["securitySchemes"] = BEARER_SCHEME
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    return openapi
