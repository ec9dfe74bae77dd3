"""Public route listing the Kubernetes versions on offer (beyond the hosted API): the catalogue
narrowed to what the provider can run, so forms and scripts need not guess."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from kupe.schemas.common import ItemList
from kupe.schemas.version import KubernetesVersion
from kupe.server.api.deps import ServicesDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response

router = APIRouter(prefix="/api/v1/versions", tags=["versions"])


@router.get(
    "",
    response_model=ItemList[KubernetesVersion],
    summary="List the Kubernetes versions clusters may be created at",
    responses=error_responses(),
)
async def list_versions(services: ServicesDep) -> Response:
    catalogue = services.versions
    available = catalogue.available()
    newest = available[-1] if available else None
    items = [
        KubernetesVersion(
            version=minor, kubernetes_version=catalogue.patches[minor], default=minor == newest
        )
        for minor in available
    ]
    return json_response(ItemList[KubernetesVersion](items=items))
