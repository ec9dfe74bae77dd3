"""The audit log route (API §11): parse the filters, call AuditService, respond."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.schemas.audit import AuditEntry
from kupe.schemas.common import ItemList
from kupe.server.api.deps import AuthorizationDep, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response
from kupe.server.db.repositories.audit import AuditFilter
from kupe.server.services.audit import view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/audit", tags=["audit"])

Tenant = Annotated[str, Path(description="Tenant name.")]


@router.get(
    "",
    response_model=ItemList[AuditEntry],
    summary="The tenant's audit log, newest first (admin)",
    responses=error_responses(400, 401, 403),
)
async def list_audit(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    actor: Annotated[
        str | None, Query(max_length=340, description="Only this actor's requests.")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=400, description="Only requests on this, e.g. clusters/web.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Only requests answered at or after this time.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Only requests answered before this time.")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
) -> Response:
    which = AuditFilter(actor=actor, target=target, since=since, until=until)
    async with scopes.reading(authorization, tenant) as (session, principal):
        rows, token = await services.audit.list(
            session, principal, which, limit=limit, continue_token=continue_
        )
        page = ItemList[AuditEntry](items=[view(row) for row in rows], continue_=token)
    return json_response(page)
