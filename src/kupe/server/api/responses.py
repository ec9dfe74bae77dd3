"""Responses built from already-serialised JSON, with the ETag header where one applies."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response

from kupe.core.etag import etag


def render(body: BaseModel) -> str:
    """A wire model as the JSON Kupe sends: camelCase, absent fields left out."""
    return body.model_dump_json(by_alias=True, exclude_none=True)


def json_response(
    body: BaseModel | str,
    *,
    status: int = 200,
    resource_version: int | str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    content = body if isinstance(body, str) else render(body)
    out = dict(headers or {})
    if resource_version is not None:
        out["ETag"] = etag(resource_version)
    return Response(content, status_code=status, media_type="application/json", headers=out)


def not_modified(resource_version: int) -> Response:
    return Response(status_code=304, headers={"ETag": etag(resource_version)})
