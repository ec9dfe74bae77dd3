"""Member routes (API §6). Members live on the tenant: If-Match takes the tenant's ETag and
every answer to a member write carries the tenant's new ETag."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.core.etag import etag
from kupe.schemas.common import ItemList
from kupe.schemas.tenant import MemberCreate, MemberUpdate, MemberView
from kupe.server.api.deps import AuthorizationDep, IfMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.idempotent import IdempotencyKey, idempotent_post
from kupe.server.api.responses import json_response, render
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.unit import UnitOfWork
from kupe.server.services.views import member_view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/members", tags=["members"])

TenantName = Annotated[str, Path(description="Tenant name.")]
Email = Annotated[str, Path(description="Member email, URL-encoded; case-insensitive.")]
TENANT_ETAG = {
    "ETag": {
        "description": "The tenant's resourceVersion in quotes (members live on the tenant).",
        "schema": {"type": "string"},
    }
}


@router.get(
    "",
    response_model=ItemList[MemberView],
    summary="List members",
    responses=error_responses(400, 401, 403),
)
async def list_members(
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
        rows, token = await services.members.list(
            session, principal, limit=limit, continue_token=continue_
        )
        page = ItemList[MemberView](items=[member_view(row) for row in rows], continue_=token)
        version = await services.tenants.version(session, principal.tenant_id)
    return json_response(page, resource_version=version)


@router.post(
    "",
    status_code=201,
    response_model=MemberView,
    summary="Add a member",
    responses={
        201: {"headers": {**TENANT_ETAG, "Location": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 409, 412, 413, 415),
    },
)
async def add_member(
    tenant: TenantName,
    body: MemberCreate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    prefix = f"/api/v1/tenants/{tenant}/members"

    async def create(unit: UnitOfWork) -> StoredResponse:
        session = await unit.session()
        member = await services.members.add(session, unit.principal, body, if_match=if_match)
        version = await services.tenants.version(session, unit.principal.tenant_id)
        view = member_view(member)
        location = f"{prefix}/{quote(view.email, safe='@')}"
        return StoredResponse(201, render(view), etag(version), location)

    return await idempotent_post(
        scopes,
        authorization,
        tenant,
        key=idempotency_key,
        route=prefix,
        body=body,
        create=create,
    )


@router.get(
    "/{email}",
    response_model=MemberView,
    summary="Get a member",
    responses={200: {"headers": TENANT_ETAG}, **error_responses(400, 401, 403, 404)},
)
async def get_member(
    tenant: TenantName,
    email: Email,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        member = await services.members.get(session, principal, email)
        version = await services.tenants.version(session, principal.tenant_id)
        view = member_view(member)
    return json_response(view, resource_version=version)


@router.patch(
    "/{email}",
    response_model=MemberView,
    summary="Change a member's role",
    responses={
        200: {"headers": TENANT_ETAG},
        **error_responses(400, 401, 403, 404, 409, 412, 413, 415),
    },
)
async def update_member(
    tenant: TenantName,
    email: Email,
    body: MemberUpdate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        member = await services.members.update(session, principal, email, body, if_match=if_match)
        version = await services.tenants.version(session, principal.tenant_id)
        view = member_view(member)
    return json_response(view, resource_version=version)


@router.delete(
    "/{email}",
    status_code=204,
    summary="Remove a member",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 409, 412),
)
async def remove_member(
    tenant: TenantName,
    email: Email,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        await services.members.remove(session, principal, email, if_match=if_match)
        version = await services.tenants.version(session, principal.tenant_id)
    return Response(status_code=204, headers={"ETag": etag(version)})
