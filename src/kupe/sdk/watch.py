"""Watching clusters (API §11) and waiting by watch, sync and async.

`watch()` yields `WatchEvent`s: the current state as ADDED events (or, from a resourceVersion,
every change after it), then changes as they commit. When the server ends the stream (it
restarted, or this client fell behind) the iterator reconnects from the last resourceVersion
it saw, so nothing is missed or repeated; a resourceVersion the server no longer has raises
`Expired` (list again). `wait()` and `wait_deleted()` use a watch when the client talks to a
server over the network and the server offers it, and poll otherwise.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx

from kupe.schemas.cluster import Cluster
from kupe.sdk._http import Call, nothing
from kupe.sdk.errors import Expired, RateLimited, ServiceUnavailable, error_from_response

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["WatchEvent", "WatchUnavailable"]

NDJSON = "application/x-ndjson"
# Longest silence on a stream before it counts as lost (the server sends a heartbeat every
# KUPE_EVENTS__HEARTBEAT_SECONDS, 15 by default).
STREAM_SILENCE_SECONDS = 60.0
# Back-off between reconnects of a stream that ended.
RECONNECT_SECONDS = (0.0, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch: `cluster` is None only for a BOOKMARK."""

    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    resource_version: str
    cluster: Cluster | None


class WatchUnavailable(Exception):
    """The server does not offer watch (an older Kupe): poll instead."""


def parse_line(line: str) -> WatchEvent | None:
    """A stream line as an event (None for a blank line)."""
    if not line.strip():
        return None
    data = json.loads(line)
    kind = data["type"]
    if kind == "ERROR":
        # The stream's way of saying 410 once it had begun (its history was pruned meanwhile).
        raise Expired(
            str(data["object"].get("error") or "resourceVersion too old"),
            status=410,
            code="EXPIRED",
        )
    if kind == "BOOKMARK":
        return WatchEvent("BOOKMARK", str(data["object"]["resourceVersion"]), None)
    cluster = Cluster.model_validate(data["object"])
    return WatchEvent(kind, cluster.resource_version, cluster)


def _params(resource_version: str | None) -> dict[str, str]:
    params = {"watch": "true"}
    if resource_version is not None:
        params["resourceVersion"] = resource_version
    return params


def _opened(response: httpx.Response) -> None:
    """Raise for an error answer, or WatchUnavailable when the answer is not a stream."""
    if response.status_code >= 400:
        raise error_from_response(response)
    if not response.headers.get("content-type", "").startswith(NDJSON):
        raise WatchUnavailable()


def streams(http: httpx.Client | httpx.AsyncClient, explicit: bool | None) -> bool:
    """Whether watch() may be used: as the client was told, else when it talks over the
    network (an in-process transport would wait for a stream to end before answering)."""
    if explicit is not None:
        return explicit
    transport = getattr(http, "_transport", None)
    return isinstance(transport, httpx.HTTPTransport | httpx.AsyncHTTPTransport)


def _open_request(
    client: Client | AsyncClient, path: str, resource_version: str | None, silence: float
) -> httpx.Request:
    call: Call[None] = Call("GET", path, nothing, params=_params(resource_version))
    request = client._core.build(client._http, call)
    request.headers["Accept"] = NDJSON
    connect = client._http.timeout.connect
    request.extensions["timeout"] = httpx.Timeout(connect, read=silence).as_dict()
    return request


def _pause(failures: int) -> float:
    return RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]


def watch_sync(
    client: Client,
    path: str,
    resource_version: str | None,
    *,
    bookmarks: bool = False,
    reconnect: bool = True,
    silence: float = STREAM_SILENCE_SECONDS,
) -> Iterator[WatchEvent]:
    """The events of the watch at `path` (see the module's docstring)."""
    last = resource_version
    failures = 0
    while True:
        request = _open_request(client, path, last, silence)
        try:
            response = client._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                _opened(response)
                failures = 0
                for line in response.iter_lines():
                    event = parse_line(line)
                    if event is None:
                        continue
                    last = event.resource_version
                    if event.type != "BOOKMARK" or bookmarks:
                        yield event
            finally:
                response.close()
        except httpx.TransportError:
            if last is None or not reconnect:
                raise
        except (ServiceUnavailable, RateLimited):
            if not reconnect:
                raise  # a busy server: the caller retries (its `last` is current)
        if not reconnect or last is None:
            return
        client._sleep(_pause(failures))
        failures += 1


async def watch_async(
    client: AsyncClient,
    path: str,
    resource_version: str | None,
    *,
    bookmarks: bool = False,
    reconnect: bool = True,
    silence: float = STREAM_SILENCE_SECONDS,
) -> AsyncIterator[WatchEvent]:
    """The events of the watch at `path` (see the module's docstring)."""
    last = resource_version
    failures = 0
    while True:
        request = _open_request(client, path, last, silence)
        try:
            response = await client._http.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    await response.aread()
                _opened(response)
                failures = 0
                async for line in response.aiter_lines():
                    event = parse_line(line)
                    if event is None:
                        continue
                    last = event.resource_version
                    if event.type != "BOOKMARK" or bookmarks:
                        yield event
            finally:
                await response.aclose()
        except httpx.TransportError:
            if last is None or not reconnect:
                raise
        except (ServiceUnavailable, RateLimited):
            if not reconnect:
                raise  # a busy server: the caller retries (its `last` is current)
        if not reconnect or last is None:
            return
        await client._sleep(_pause(failures))
        failures += 1
