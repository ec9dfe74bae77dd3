"""Watch streams (API §11): newline-delimited JSON, or Server-Sent Events when the client
accepts `text/event-stream`.

NDJSON lines are `{"type": "ADDED|MODIFIED|DELETED", "object": Cluster}`, with
`{"type": "BOOKMARK", "object": {"resourceVersion": "N"}}` after the initial list and on idle
streams (resume from N). SSE events carry `id:` = resourceVersion and `event:` = the type;
idle streams get `: heartbeat` comments, and `Last-Event-ID` resumes like `resourceVersion`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query, Request
from starlette.responses import StreamingResponse

from kupe.core.errors import Expired
from kupe.server.services.auth import Principal
from kupe.server.services.event_hub import ndjson_line
from kupe.server.services.watch import BOOKMARK, EXPIRED, WatchItem, parse_version

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

WatchFlag = Annotated[
    bool,
    Query(description="Stream changes instead of answering once (see §11 of the API)."),
]
ResourceVersion = Annotated[
    str | None,
    Query(
        alias="resourceVersion",
        description="With watch: stream the events after this resourceVersion (410 EXPIRED "
        "when older than the event retention); without it, the current state comes first, "
        "as ADDED events.",
    ),
]
_WATCH_LINE = {
    "type": "object",
    "required": ["type", "object"],
    "properties": {
        "type": {"enum": ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]},
        "object": {
            "oneOf": [
                {"$ref": "#/components/schemas/Cluster"},
                {
                    "type": "object",
                    "description": "BOOKMARK: resume the watch from this resourceVersion.",
                    "properties": {"resourceVersion": {"type": "string"}},
                },
            ]
        },
    },
}
WATCH_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {
            NDJSON: {"schema": _WATCH_LINE},
            SSE: {"schema": {"type": "string", "description": "id: / event: / data: lines"}},
        },
        "description": "With `watch=true`: one JSON event per line (or Server-Sent Events).",
    }
}
# Watch streams are not buffered by proxies that honour it (nginx).
_STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def wants_sse(request: Request) -> bool:
    return SSE in request.headers.get("accept", "")


def requested_version(request: Request, resource_version: str | None) -> int | None:
    """`resourceVersion`, or for SSE clients reconnecting, their `Last-Event-ID`."""
    if resource_version is None and wants_sse(request):
        resource_version = request.headers.get("last-event-id") or None
    return parse_version(resource_version)


async def watch_response(
    request: Request, principal: Principal, name: str | None, resource_version: str | None
) -> StreamingResponse:
    """Open the watch (errors, such as 410, are answered before the stream starts)."""
    events = request.app.state.runtime.events
    since = requested_version(request, resource_version)
    items = await events.watch.open(principal, name=name, since=since)
    if wants_sse(request):
        return StreamingResponse(_sse(items), media_type=SSE, headers=_STREAM_HEADERS)
    return StreamingResponse(_ndjson(items), media_type=NDJSON, headers=_STREAM_HEADERS)


def _bookmark(version: int) -> str:
    return json.dumps({"type": BOOKMARK, "object": {"resourceVersion": str(version)}})


_EXPIRED_LINE = (
    json.dumps(
        {
            "type": "ERROR",
            "object": {"error": Expired.default_message, "code": Expired.code, "field": None},
        }
    )
    + "\n"
).encode()


async def _ndjson(items: AsyncIterator[WatchItem]) -> AsyncIterator[bytes]:
    async for item in items:
        if item.type == EXPIRED:
            yield _EXPIRED_LINE
        elif item.object is None:
            yield (_bookmark(item.resource_version) + "\n").encode()
        elif item.line is not None:
            yield item.line  # made once per event for all its watchers
        else:
            yield ndjson_line(item.type, item.object)


async def _sse(items: AsyncIterator[WatchItem]) -> AsyncIterator[str]:
    listed = False
    async for item in items:
        if item.type == EXPIRED:
            yield f"event: ERROR\ndata: {_EXPIRED_LINE.decode().strip()}\n\n"
            return
        if item.object is None:
            if not listed:
                # The end of the initial list: where to resume from.
                listed = True
                data = _bookmark(item.resource_version)
                yield f"id: {item.resource_version}\nevent: BOOKMARK\ndata: {data}\n\n"
            else:
                yield ": heartbeat\n\n"
            continue
        listed = True
        yield f"id: {item.resource_version}\nevent: {item.type}\ndata: {item.object}\n\n"
