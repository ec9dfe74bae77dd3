"""Invoice routes (API §8): a tenant's monthly invoices, read-only for its members."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from kupe.core.etag import none_match
from kupe.schemas.billing import Invoice
from kupe.schemas.common import ItemList
from kupe.server.api.deps import AuthorizationDep, IfNoneMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response, not_modified
from kupe.server.services.billing import invoice_view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/invoices", tags=["billing"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="The invoice's month, YYYY-MM.")]
ETAG_HEADER = {
    "ETag": {
        "description": "The resourceVersion in quotes.",
        "schema": {"type": "string"},
    }
}


@router.get(
    "",
    response_model=ItemList[Invoice],
    summary="List the tenant's invoices, oldest month first",
    responses=error_responses(400, 401, 403),
)
async def list_invoices(
    tenant: Tenant, scopes: ScopesDep, services: ServicesDep, authorization: AuthorizationDep
) -> Response:
    async with scopes.reading(authorization, tenant, while_terminating=True) as (
        session,
        principal,
    ):
        rows = await services.billing.list(session, principal)
        page = ItemList[Invoice](items=[invoice_view(row) for row in rows])
    return json_response(page)


@router.get(
    "/{name}",
    response_model=Invoice,
    summary="Get one month's invoice (Draft: the running estimate)",
    responses={200: {"headers": ETAG_HEADER}, **error_responses(304, 400, 401, 403, 404)},
)
async def get_invoice(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant, while_terminating=True) as (
        session,
        principal,
    ):
        row = await services.billing.get(session, principal, name)
        if none_match(if_none_match, row.resource_version):
            return not_modified(row.resource_version)
        view = invoice_view(row)
    return json_response(view, resource_version=row.resource_version)
