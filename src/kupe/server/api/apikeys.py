"""API key routes (API §5): admins only; the raw key is shown once, at creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.core.etag import etag
from kupe.schemas.apikey import ApiKey, ApiKeyCreate, ApiKeyCreated
from kupe.schemas.common import ItemList
from kupe.server.api.deps import AuthorizationDep, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.idempotent import IdempotencyKey, idempotent_post
from kupe.server.api.responses import json_response, render
from kupe.server.services import audit
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.unit import UnitOfWork
from kupe.server.services.views import api_key_view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/apikeys", tags=["apikeys"])

TenantName = Annotated[str, Path(description="Tenant name.")]
KeyId = Annotated[str, Path(description="Key id: ak-<8 lowercase letters or digits>.")]


@router.get(
    "",
    response_model=ItemList[ApiKey],
    summary="List API keys (metadata only)",
    responses=error_responses(400, 401, 403),
)
async def list_api_keys(
    tenant: TenantName,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        rows, token = await services.api_keys.list(
            session, principal, limit=limit, continue_token=continue_
        )
        page = ItemList[ApiKey](items=[api_key_view(row) for row in rows], continue_=token)
    return json_response(page)


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Create an API key (the raw key is in this response only)",
    responses={
        201: {"headers": {"ETag": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 409, 413, 415),
    },
)
async def create_api_key(
    tenant: TenantName,
    body: ApiKeyCreate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def create(unit: UnitOfWork) -> StoredResponse:
        issued = await services.api_keys.create(await unit.session(), unit.principal, body)
        view = api_key_view(issued.record, raw=issued.raw)
        # No Location header here (the key has no GET of its own), but the audit names it.
        audit.created_at(f"/api/v1/tenants/{tenant}/apikeys/{issued.record.id}")
        return StoredResponse(201, render(view), etag(issued.record.resource_version))

    return await idempotent_post(
        scopes,
        authorization,
        tenant,
        key=idempotency_key,
        route=f"/api/v1/tenants/{tenant}/apikeys",
        body=body,
        create=create,
        # The body holds a secret: no cache may keep it.
        headers={"Cache-Control": "no-store"},
    )


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key (effective immediately)",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404),
)
async def revoke_api_key(
    tenant: TenantName,
    key_id: KeyId,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        await services.api_keys.revoke(session, principal, key_id)
    return Response(status_code=204)
