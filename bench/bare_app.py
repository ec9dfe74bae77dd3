"""The baseline for the GET benchmark: a bare Starlette endpoint that returns the same bytes as
Kupe's GET of one cluster, served by the same uvicorn configuration as `kupe serve`."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build(body: bytes, etag: str) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/json", headers={"ETag": etag})

    return Starlette(routes=[Route("/{path:path}", endpoint)])


if __name__ == "__main__":
    port, body_file, etag = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    uvicorn.run(
        build(body_file.read_bytes(), etag),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
    )
