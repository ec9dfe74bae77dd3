"""Service endpoints (API §10): liveness, readiness, metrics."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from kupe.server.api.deps import RuntimeDep

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Database reachable, migrations current, reconciler running",
    responses={503: {"description": "Not ready; the body says which check failed"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        revision = await runtime.db.current_revision()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if revision == runtime.head else f"at {revision}"
    except Exception as exc:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    if runtime.run_reconciler:
        stale = runtime.clock.now() - runtime.reconciler.last_loop_at > timedelta(minutes=2)
        checks["reconciler"] = "ok" if runtime.reconciler.running and not stale else "stopped"
    ready = all(value == "ok" for value in checks.values())
    headers = None if ready else {"Retry-After": "5"}
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
        headers=headers,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
