"""Cluster routes (API §4): parse, call ClusterService, respond."""

from __future__ import annotations

from typing import Annotated, Literal

import yaml
from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response

from kupe.core.errors import AlreadyExists
from kupe.core.etag import none_match
from kupe.schemas.cluster import Cluster, ClusterCreate, ClusterUpdate, ConnectionDetails
from kupe.schemas.common import ErrorBody, ItemList
from kupe.server.api.deps import AuthorizationDep, IfMatch, IfNoneMatch, RuntimeDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response, not_modified
from kupe.server.services.cluster import cluster_view

router = APIRouter(prefix="/api/v1/tenants/{tenant}/clusters", tags=["clusters"])

Tenant = Annotated[str, Path(description="Tenant name.")]
Name = Annotated[str, Path(description="Cluster name.")]
ETAG_HEADER = {
    "ETag": {"description": "The object's resourceVersion in quotes.", "schema": {"type": "string"}}
}


@router.get(
    "",
    response_model=ItemList[Cluster],
    summary="List clusters",
    responses=error_responses(400, 401, 403),
)
async def list_clusters(
    tenant: Tenant,
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
) -> Response:
    async with runtime.polling(authorization, tenant) as (principal, _):
        page = await runtime.clusters.list_json(principal, limit=limit, continue_token=continue_)
    return json_response(page)


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
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Repeat a create safely: the same key and body within 24 h returns "
            "the original response.",
        ),
    ] = None,
) -> Response:
    prefix = f"/api/v1/tenants/{tenant}/clusters"
    try:
        async with runtime.writing(authorization, tenant) as (session, principal):
            stored = await runtime.clusters.create(
                session, principal, body, idempotency_key=idempotency_key, location_prefix=prefix
            )
    except AlreadyExists:
        if idempotency_key is None:
            raise
        # A concurrent request with the same key won the race: replay its response.
        async with runtime.writing(authorization, tenant) as (session, principal):
            stored = await runtime.clusters.create(
                session, principal, body, idempotency_key=idempotency_key, location_prefix=prefix
            )
    headers = {"Location": stored.location} if stored.location else {}
    if stored.etag:
        headers["ETag"] = stored.etag
    return json_response(stored.body, status=stored.status, headers=headers)


@router.get(
    "/{name}",
    response_model=Cluster,
    summary="Get a cluster",
    responses={200: {"headers": ETAG_HEADER}, **error_responses(304, 400, 401, 403, 404)},
)
async def get_cluster(
    tenant: Tenant,
    name: Name,
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    if_none_match: IfNoneMatch = None,
) -> Response:
    async with runtime.polling(authorization, tenant, name) as (principal, found):
        version = runtime.clusters.require(found, name)
        if none_match(if_none_match, version.resource_version):
            return not_modified(version.resource_version)
        resource_version, body = await runtime.clusters.get_json(principal, version)
    return json_response(body, resource_version=resource_version)


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
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with runtime.writing(authorization, tenant) as (session, principal):
        row = await runtime.clusters.update(session, principal, name, body, if_match=if_match)
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
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    if_match: IfMatch = None,
) -> Response:
    async with runtime.writing(authorization, tenant) as (session, principal):
        await runtime.clusters.delete(session, principal, name, if_match=if_match)
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
    tenant: Tenant,
    name: Name,
    runtime: RuntimeDep,
    authorization: AuthorizationDep,
    format: Annotated[
        Literal["json", "kubeconfig"] | None,
        Query(description="`kubeconfig` returns a kubeconfig YAML document."),
    ] = None,
) -> Response:
    async with runtime.reading(authorization, tenant) as (session, principal):
        details = await runtime.clusters.connection_details(session, principal, name)
        document = runtime.clusters.kubeconfig(principal, name, details)
    if format == "kubeconfig":
        text = yaml.safe_dump(document, sort_keys=False)
        return Response(text, media_type="application/yaml")
    return json_response(details)
