"""Tenant routes (API §3): the tenant with its members and status, and its PATCH."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from kupe.core.etag import none_match
from kupe.schemas.tenant import Tenant, TenantDelete, TenantUpdate
from kupe.server.api.deps import AuthorizationDep, IfMatch, IfNoneMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response, not_modified

router = APIRouter(prefix="/api/v1/tenants/{tenant}", tags=["tenant"])

TenantName = Annotated[str, Path(description="Tenant name.")]
ETAG_HEADER = {
    "ETag": {"description": "The tenant's resourceVersion in quotes.", "schema": {"type": "string"}}
}


@router.get(
    "",
    response_model=Tenant,
    summary="Get the tenant",
    responses={200: {"headers": ETAG_HEADER}, **error_responses(304, 400, 401, 403)},
)
async def get_tenant(
    tenant: TenantName,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant, while_terminating=True) as (
        session,
        principal,
    ):
        version = await services.tenants.version(session, principal.tenant_id)
        if none_match(if_none_match, version):
            return not_modified(version)
        row = await services.tenants.row(session, principal.tenant_id)
        view = await services.tenants.view(session, row)
    return json_response(view, resource_version=view.resource_version)


@router.patch(
    "",
    response_model=Tenant,
    summary="Change the plan or the observability limits",
    responses={
        200: {"headers": ETAG_HEADER},
        **error_responses(400, 401, 403, 409, 412, 413, 415),
    },
)
async def update_tenant(
    tenant: TenantName,
    body: TenantUpdate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        row = await services.tenants.update(session, principal, body, if_match=if_match)
        view = await services.tenants.view(session, row)
    return json_response(view, resource_version=view.resource_version)


@router.delete(
    "",
    status_code=202,
    response_model=Tenant,
    summary="Delete the tenant (its owner only, with an OIDC token)",
    description='Body `{"confirm": "<tenant name>", "cascade": bool}`. The tenant becomes '
    "Terminating; its keys and members stop working at once; with `cascade` its clusters are "
    "deleted through their normal lifecycle; GET answers Terminating, then 404. Errors: 403 "
    "`owner_required`, 400 wrong `confirm`, 409 `clusters_exist`, 409 `already_terminating`, "
    "429 more than one request a minute.",
    responses={202: {"headers": ETAG_HEADER}, **error_responses(400, 401, 403, 409, 413, 415)},
)
async def delete_tenant(
    tenant: TenantName,
    body: TenantDelete,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
) -> Response:
    # Asking again while it is deleted answers 409 already_terminating, so it gets this far.
    async with scopes.writing(authorization, tenant, while_terminating=True) as (
        session,
        principal,
    ):
        row = await services.tenants.request_deletion(session, principal, body, services.clusters)
        view = await services.tenants.view(session, row)
    return json_response(view, status=202, resource_version=view.resource_version)
