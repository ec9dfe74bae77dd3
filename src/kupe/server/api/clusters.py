"""Cluster routes (API §4): parse, call ClusterService, respond."""

from __future__ import annotations

from typing import Annotated, Literal

import yaml
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from kupe.core.etag import none_match
from kupe.schemas.cluster import Cluster, ClusterCreate, ClusterUpdate, ConnectionDetails
from kupe.schemas.common import ErrorBody, ItemList
from kupe.schemas.credential import ClusterCredential, CredentialRequest
from kupe.server.api.deps import (
    AuthorizationDep,
    IfMatch,
    IfNoneMatch,
    ScopesDep,
    ServicesDep,
)
from kupe.server.api.errors import error_responses
from kupe.server.api.idempotent import IdempotencyKey, idempotent_post
from kupe.server.api.responses import json_response, not_modified, render
from kupe.server.api.watch import WATCH_RESPONSES, ResourceVersion, WatchFlag, watch_response
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.services.cluster_views import cluster_view
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.unit import UnitOfWork

router = APIRouter(prefix="/api/v1/tenants/{tenant}/clusters", tags=["clusters"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="Cluster name.")]
ETAG_HEADER = {
    "ETag": {"description": "The object's resourceVersion in quotes.", "schema": {"type": "string"}}
}


@router.get(
    "",
    response_model=ItemList[Cluster],
    summary="List clusters (or watch them: `watch=true`)",
    responses={**WATCH_RESPONSES, **error_responses(400, 401, 403, 410)},
)
async def list_clusters(
    request: Request,
    tenant: Tenant,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
    watch: WatchFlag = False,
    resource_version: ResourceVersion = None,
) -> Response:
    async with scopes.polling(authorization, tenant, ClusterRow) as (principal, _):
        if watch:
            stream = await watch_response(request, principal, None, resource_version)
        else:
            page = await services.clusters.list_json(
                principal, limit=limit, continue_token=continue_
            )
    return stream if watch else json_response(page)


@router.post(
    "",
    status_code=201,
    response_model=Cluster,
    summary="Create a cluster",
    responses={
        201: {"headers": {**ETAG_HEADER, "Location": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 409, 413, 415),
    },
)
async def create_cluster(
    tenant: Tenant,
    body: ClusterCreate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    prefix = f"/api/v1/tenants/{tenant}/clusters"

    async def create(unit: UnitOfWork) -> StoredResponse:
        return await services.clusters.create(unit, body, location_prefix=prefix)

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
    "/{name}",
    response_model=Cluster,
    summary="Get a cluster (or watch it: `watch=true`)",
    responses={
        200: {"headers": ETAG_HEADER, **WATCH_RESPONSES[200]},
        **error_responses(304, 400, 401, 403, 404, 410),
    },
)
async def get_cluster(
    request: Request,
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
    watch: WatchFlag = False,
    resource_version: ResourceVersion = None,
) -> Response:
    async with scopes.polling(authorization, tenant, ClusterRow, name) as (principal, found):
        if watch:
            return await watch_response(request, principal, name, resource_version)
        version = services.clusters.require(found, name)
        if none_match(if_none_match, version.resource_version):
            return not_modified(version.resource_version)
        current, body = await services.clusters.get_json(principal, version)
    return json_response(body, resource_version=current)


@router.patch(
    "/{name}",
    response_model=Cluster,
    summary="Update a cluster (JSON merge patch)",
    responses={
        200: {"headers": ETAG_HEADER},
        **error_responses(400, 401, 403, 404, 409, 412, 413, 415),
    },
)
async def update_cluster(
    tenant: Tenant,
    name: Name,
    body: ClusterUpdate,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        row = await services.clusters.update(session, principal, name, body, if_match=if_match)
        view = cluster_view(row)
    return json_response(view, resource_version=row.resource_version)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a cluster",
    response_class=Response,
    responses=error_responses(400, 401, 403, 404, 412),
)
async def delete_cluster(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with scopes.writing(authorization, tenant) as (session, principal):
        await services.clusters.delete(session, principal, name, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{name}/kubeconfig",
    response_model=ConnectionDetails,
    summary="Connection details (or a kubeconfig with ?format=kubeconfig)",
    responses={
        200: {
            "content": {
                "application/yaml": {
                    "schema": {
                        "type": "object",
                        "description": "A kubeconfig document (YAML)",
                        "required": ["apiVersion", "kind", "clusters", "contexts", "users"],
                    }
                }
            }
        },
        **error_responses(400, 401, 403, 404, 409, 503),
        409: {
            "model": ErrorBody,
            "description": "The cluster is Terminating (code CLUSTER_TERMINATING)",
        },
    },
)
async def cluster_kubeconfig(
    request: Request,
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    format: Annotated[
        Literal["json", "kubeconfig"] | None,
        Query(description="`kubeconfig` returns a kubeconfig YAML document."),
    ] = None,
) -> Response:
    async with scopes.reading(authorization, tenant) as (session, principal):
        details = await services.clusters.connection_details(session, principal, name)
        api_url = str(request.base_url).rstrip("/")
        document = services.clusters.kubeconfig(principal, name, details, api_url)
    if format == "kubeconfig":
        text = yaml.safe_dump(document, sort_keys=False)
        return Response(text, media_type="application/yaml")
    return json_response(details)


@router.post(
    "/{name}/credentials",
    status_code=201,
    response_model=ClusterCredential,
    summary="A short-lived token for this cluster only (beyond the hosted API)",
    description="Any member (readonly too); the token carries the caller's role (admin: "
    "cluster-admin, readonly: view inside the cluster), lives 15 minutes unless "
    "`expirationSeconds` (60..3600) says otherwise and never outlives the caller's API key. "
    "The cluster's API server checks it with Kupe: revoking the key, removing the member or "
    "deleting the cluster ends it within seconds.",
    responses={
        201: {"headers": {"Cache-Control": {"schema": {"type": "string"}}}},
        **error_responses(400, 401, 403, 404, 409, 413, 415, 501, 503),
    },
)
async def cluster_credentials(
    tenant: Tenant,
    name: Name,
    scopes: ScopesDep,
    services: ServicesDep,
    authorization: AuthorizationDep,
    body: CredentialRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    wanted = body or CredentialRequest()

    async def create(unit: UnitOfWork) -> StoredResponse:
        issued = await services.credentials.issue(
            await unit.session(), unit.principal, name, wanted
        )
        return StoredResponse(201, render(issued))

    return await idempotent_post(
        scopes,
        authorization,
        tenant,
        key=idempotency_key,
        route=f"/api/v1/tenants/{tenant}/clusters/{name}/credentials",
        body=wanted,
        create=create,
        # The body holds a secret: no cache may keep it.
        headers={"Cache-Control": "no-store"},
    )
