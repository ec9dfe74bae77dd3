"""The TokenReview webhook clusters call to check a bearer token with Kupe (not part of the
public API: each cluster's API server is configured with its own URL)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import JSONResponse

from kupe.server.api.deps import RuntimeDep

router = APIRouter(prefix="/internal/v1/clusters", include_in_schema=False)
REVIEW_API = "authentication.k8s.io/v1"


@router.post("/{cluster_id}/tokenreview")
async def token_review(
    cluster_id: Annotated[str, Path(max_length=64)], request: Request, runtime: RuntimeDep
) -> JSONResponse:
    """Answer a TokenReview: authenticated with the token's user and groups, or not."""
    try:
        review: Any = await request.json()
        token = review["spec"]["token"]
        if not isinstance(token, str):
            raise TypeError("token")
    except (ValueError, KeyError, TypeError):
        return _answer({"authenticated": False, "error": "not a TokenReview with a token"})
    async with runtime.db.read() as session:
        found = await runtime.services.credentials.review(session, cluster_id, token)
    if found is None:
        return _answer({"authenticated": False, "error": "token not valid for this cluster"})
    user = {"username": found.username, "uid": found.uid, "groups": list(found.groups)}
    return _answer({"authenticated": True, "user": user})


def _answer(status: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"apiVersion": REVIEW_API, "kind": "TokenReview", "status": status})
