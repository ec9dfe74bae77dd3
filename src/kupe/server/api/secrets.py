"""Managed secret routes (API §7): parse, call SecretService, respond."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.core.etag import etag, none_match
from kupe.schemas.common import ItemList
from kupe.schemas.secret import Secret, SecretCreate, SecretUpdate
from kupe.server.api.deps import AuthorizationDep, IfMatch, IfNoneMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.idempotent import IdempotencyKey, idempotent_post
from kupe.server.api.responses import json_response, not_modified, render
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.secret import secret_view
from kupe.server.services.unit import UnitOfWork

router = APIRouter(prefix="/api/v1/tenants/{tenant}/secrets", tags=["secrets"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="Managed secret name.")]
ETAG_HEADER = {
    "ETag": {"description": "The object's resourceVersion in quotes.", "schema": {"type": "string"}}
}


@router.get(
    "",
    response_model=ItemList[Secret],
    summary="List managed secrets",
    responses=error_responses(400, 401, 403, 501),
)
async def list_secrets(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        rows, token = await services.secrets.list(
            session, principal, limit=limit, continue_token=continue_
        )
        page = ItemList[Secret](items=[secret_view(row) for row in rows], continue_=token)
    return json_response(page)


@router.post(
    "",
    status_code=201,
    response_model=Secret,
    summary="Create a managed secret (its value stays in OpenBao)",
    responses={
        201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 409, 413, 415, 501),
    },
)
async def create_secret(
    tenant: Tenant,
    body: SecretCreate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    prefix = f"/api/v1/tenants/{tenant}/secrets"

    async def create(unit: UnitOfWork) -> StoredResponse:
        row = await services.secrets.create(await unit.session(), unit.principal, body)
        view = secret_view(row)
        return StoredResponse(201, render(view), etag(row.resource_version), f"{prefix}/{row.name}")

    return await idempotent_post(
        scopes, authorization, tenant, key=idempotency_key, route=prefix, body=body, create=create
    )


@router.get(
    "/{name}",
    response_model=Secret,
    summary="Get a managed secret",
    responses={200: {"headers": ETAG_HEADER}, **error_responses(304, 400, 401, 403, 404, 501)},
)
async def get_secret(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        row = await services.secrets.get(session, principal, name)
        if none_match(if_none_match, row.resource_version):
            return not_modified(row.resource_version)
        view = secret_view(row)
    return json_response(view, resource_version=row.resource_version)


@router.patch(
    "/{name}",
    response_model=Secret,
    summary="Replace the sync targets ([] stops syncing and removes the copies)",
    responses={
        200: {"headers": ETAG_HEADER},
        **error_responses(400, 401, 403, 404, 409, 412, 413, 415, 501),
    },
)
async def update_secret(
    tenant: Tenant,
    name: Name,
    body: SecretUpdate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        row = await services.secrets.update(session, principal, name, body, if_match=if_match)
        view = secret_view(row)
    return json_response(view, resource_version=row.resource_version)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a managed secret (its copies are removed; the OpenBao value stays)",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 412, 501),
)
async def delete_secret(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        await services.secrets.delete(session, principal, name, if_match=if_match)
    return Response(status_code=204)
