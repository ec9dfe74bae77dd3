"""Alertmanager configuration routes (API §9): parse, call AlertingService, respond. Every
document carries its own ETag; credentials are masked in every response."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Path
from starlette.responses import Response

from kupe.core.etag import none_match
from kupe.schemas.alerting import AlertmanagerObject, EffectiveConfig, ReceiverList, RouteList
from kupe.server.api.deps import AuthorizationDep, IfMatch, IfNoneMatch, ScopesDep, ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response, not_modified
from kupe.server.services.alerting import Versioned

router = APIRouter(prefix="/api/v1/tenants/{tenant}/alertmanager", tags=["alerting"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="Receiver name (wins over a name in the body).")]
ETAG_HEADER = {
    "ETag": {"description": "The document's version in quotes.", "schema": {"type": "string"}}
}
READ_ERRORS = error_responses(304, 400, 401, 403, 503)
WRITE_ERRORS = error_responses(400, 401, 403, 409, 412, 413, 415, 503)
RECEIVER_EXAMPLE = {
    "webhook_configs": [{"url": "https://hooks.example.com/alerts", "send_resolved": True}]
}


def _answer(document: Versioned, if_none_match: str | None = None) -> Response:
    if none_match(if_none_match, document.version):
        return not_modified(document.version)
    body: Any = document.body
    return json_response(orjson.dumps(body).decode(), resource_version=document.version)


@router.get(
    "/receivers",
    response_model=ReceiverList,
    summary="List alert receivers (credentials masked)",
    responses=error_responses(400, 401, 403, 503),
)
async def list_receivers(
    tenant: Tenant, scopes: ScopesDep, services: ServicesDep, authorization: AuthorizationDep
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        found = await services.alerting.receivers(session, principal)
    body = {"items": [document.body for _name, document in found]}
    return json_response(orjson.dumps(body).decode())


@router.get(
    "/receivers/{name}",
    summary="Get an alert receiver (credentials masked)",
    responses={200: {"headers": ETAG_HEADER}, **READ_ERRORS, **error_responses(404)},
)
async def get_receiver(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        document = await services.alerting.receiver(session, principal, name)
    return _answer(document, if_none_match)


@router.put(
    "/receivers/{name}",
    summary="Create or replace an alert receiver (checked by Alertmanager first)",
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS},
)
async def put_receiver(
    tenant: Tenant,
    name: Name,
    body: Annotated[AlertmanagerObject, Body(examples=[RECEIVER_EXAMPLE])],
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.working(authorization, tenant) as unit:
        document = await services.alerting.put_receiver(unit, name, body, if_match=if_match)
    return _answer(document)


@router.delete(
    "/receivers/{name}",
    status_code=204,
    summary="Delete an alert receiver (409 while a route names it)",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 409, 412, 503),
)
async def delete_receiver(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.working(authorization, tenant) as unit:
        await services.alerting.delete_receiver(unit, name, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/routes",
    response_model=RouteList,
    summary="Get the child routes of the tenant's root route",
    responses={200: {"headers": ETAG_HEADER}, **READ_ERRORS},
)
async def get_routes(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        document = await services.alerting.routes(session, principal)
    return _answer(document, if_none_match)


@router.put(
    "/routes",
    response_model=RouteList,
    summary='Replace the child routes ({"items": null} clears them)',
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS},
)
async def put_routes(
    tenant: Tenant,
    body: RouteList,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.working(authorization, tenant) as unit:
        document = await services.alerting.put_routes(unit, body.items, if_match=if_match)
    return _answer(document)


@router.get(
    "/global",
    summary="Get the global section (credentials masked)",
    responses={200: {"headers": ETAG_HEADER}, **READ_ERRORS},
)
async def get_global(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        document = await services.alerting.global_(session, principal)
    return _answer(document, if_none_match)


@router.put(
    "/global",
    summary="Replace the global section ({} clears it)",
    responses={200: {"headers": ETAG_HEADER}, **WRITE_ERRORS},
)
async def put_global(
    tenant: Tenant,
    body: Annotated[AlertmanagerObject, Body(examples=[{"smtp_smarthost": "smtp.example:587"}])],
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.working(authorization, tenant) as unit:
        document = await services.alerting.put_global(unit, body, if_match=if_match)
    return _answer(document)


@router.get(
    "/config",
    response_model=EffectiveConfig,
    summary="The tenant's effective Alertmanager configuration (credentials masked)",
    responses={200: {"headers": ETAG_HEADER}, **READ_ERRORS},
)
async def get_config(
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        document = await services.alerting.config(session, principal)
    return _answer(document, if_none_match)
