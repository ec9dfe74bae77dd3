"""Webhook routes (API §11): parse, call WebhookService, respond."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.core.etag import etag
from kupe.schemas.common import ItemList
from kupe.schemas.webhook import (
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookUpdate,
)
from kupe.server.api.deps import AuthorizationDep, IfMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.idempotent import IdempotencyKey, idempotent_post
from kupe.server.api.responses import json_response, render
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.unit import UnitOfWork
from kupe.server.services.webhook import delivery_view, webhook_view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/webhooks", tags=["webhooks"])

Tenant = Annotated[str, Path(description="Tenant name.")]
WebhookId = Annotated[str, Path(max_length=40, description="Webhook id (wh-...).")]
Limit = Annotated[int | None, Query(ge=1, le=1000, description="Page size.")]
Continue = Annotated[
    str | None, Query(alias="continue", description="Token from the previous page.")
]
ETAG_HEADER = {
    "ETag": {"description": "The object's resourceVersion in quotes.", "schema": {"type": "string"}}
}


@router.get(
    "",
    response_model=ItemList[Webhook],
    summary="List webhooks (admin)",
    responses=error_responses(400, 401, 403),
)
async def list_webhooks(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    limit: Limit = None,
    continue_: Continue = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        rows, token = await services.webhooks.list(
            session, principal, limit=limit, continue_token=continue_
        )
        page = ItemList[Webhook](items=[webhook_view(row) for row in rows], continue_=token)
    return json_response(page)


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    summary="Create a webhook (its signing secret is in this response only)",
    responses={
        201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 409, 413, 415),
    },
)
async def create_webhook(
    tenant: Tenant,
    body: WebhookCreate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    prefix = f"/api/v1/tenants/{tenant}/webhooks"

    async def create(unit: UnitOfWork) -> StoredResponse:
        view = await services.webhooks.create(unit, body)
        return StoredResponse(201, render(view), etag(view.resource_version), f"{prefix}/{view.id}")

    return await idempotent_post(
        scopes, authorization, tenant, key=idempotency_key, route=prefix, body=body, create=create
    )


@router.get(
    "/{webhook_id}",
    response_model=Webhook,
    summary="Get a webhook (admin; never its secret)",
    responses={200: {"headers": ETAG_HEADER}, **error_responses(400, 401, 403, 404)},
)
async def get_webhook(
    tenant: Tenant,
    webhook_id: WebhookId,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        row = await services.webhooks.get(session, principal, webhook_id)
        view = webhook_view(row)
    return json_response(view, resource_version=row.resource_version)


@router.patch(
    "/{webhook_id}",
    response_model=Webhook,
    summary="Change a webhook's URL, events or secret, or re-enable it",
    responses={
        200: {"headers": ETAG_HEADER},
        **error_responses(400, 401, 403, 404, 409, 412, 413, 415),
    },
)
async def update_webhook(
    tenant: Tenant,
    webhook_id: WebhookId,
    body: WebhookUpdate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.working(authorization, tenant) as unit:
        row = await services.webhooks.update(unit, webhook_id, body, if_match=if_match)
        view = webhook_view(row)
    return json_response(view, resource_version=row.resource_version)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook and its delivery attempts",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 412),
)
async def delete_webhook(
    tenant: Tenant,
    webhook_id: WebhookId,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        await services.webhooks.delete(session, principal, webhook_id, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=ItemList[WebhookDelivery],
    summary="A webhook's delivery attempts, newest first",
    responses=error_responses(400, 401, 403, 404),
)
async def list_deliveries(
    tenant: Tenant,
    webhook_id: WebhookId,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    limit: Limit = None,
    continue_: Continue = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        rows, token = await services.webhooks.deliveries(
            session, principal, webhook_id, limit=limit, continue_token=continue_
        )
        page = ItemList[WebhookDelivery](
            items=[delivery_view(row) for row in rows], continue_=token
        )
    return json_response(page)
