"""The baselines for the GET benchmark, served by the same uvicorn configuration as `kupe serve`
and returning the same bytes as Kupe's GET of one cluster:

- `starlette`: a bare Starlette endpoint (the issue's baseline: the limit of the stack);
- `fastapi`: a FastAPI route with the same path, parameters and headers as Kupe's, doing no
  work: the floor of the framework Kupe is written in, so the gap splits into "framework" and
  "Kupe's own work" (authentication, database, rendering, middleware).

    python bench/bare_app.py PORT BODY_FILE ETAG [starlette|fastapi]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(body: bytes, etag: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"ETag": etag})

    return Starlette(routes=[Route("/{path:path}", endpoint)])


def build_fastapi(body: bytes, etag: str) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/tenants/{tenant}/clusters/{name}")
    async def get_cluster(
        tenant: str,
        name: str,
        authorization: Annotated[str | None, Header()] = None,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        return Response(body, media_type="application/json", headers={"ETag": etag})

    return app


if __name__ == "__main__":
    port, body_file, etag = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    kind = sys.argv[4] if len(sys.argv) > 4 else "starlette"
    builder = build_fastapi if kind == "fastapi" else build
    uvicorn.run(
        builder(body_file.read_bytes(), etag),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
