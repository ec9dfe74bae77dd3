"""A cluster's timeline (API §11): parse, call the timeline service, respond."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from kupe.schemas.event import Timeline
from kupe.server.api.deps import AuthorizationDep, ScopesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response
from kupe.server.db.models import Cluster as ClusterRow

router = APIRouter(prefix="/api/v1/tenants/{tenant}/clusters", tags=["clusters"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="Cluster name.")]


@router.get(
    "/{name}/events",
    response_model=Timeline,
    summary="A cluster's timeline",
    responses=error_responses(400, 401, 403, 404),
)
async def cluster_events(
    request: Request, tenant: Tenant, name: Name, scopes: ScopesDep, authorization: AuthorizationDep
) -> Response:
    async with scopes.polling(authorization, tenant, ClusterRow, name) as (principal, _found):
        timeline = await request.app.state.runtime.events.timeline.timeline(principal, name)
    return json_response(timeline)
