"""Alertmanager configuration (API §9): the tenant's receivers, routes and global section,
each a document with its own ETag. Credentials come back as `"<secret>"`; sending a document
back unchanged keeps them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from kupe.sdk._http import Call, Core, if_match_header, nothing, segment

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["Alerting", "AsyncAlerting", "Document"]


@dataclass(frozen=True)
class Document:
    """One document as the server answered it, and its ETag (for If-Match)."""

    body: Any
    etag: str


def _document(response: httpx.Response) -> Document:
    return Document(json.loads(response.content), response.headers.get("ETag", ""))


def _items(response: httpx.Response) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(response.content)["items"]
    return items


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, suffix: str) -> str:
        return self.core.tenant_path(f"/alertmanager/{suffix}")

    def receivers(self) -> Call[list[dict[str, Any]]]:
        return Call("GET", self.path("receivers"), _items)

    def get(self, suffix: str) -> Call[Document]:
        return Call("GET", self.path(suffix), _document)

    def put(self, suffix: str, body: object, if_match: str | int | None) -> Call[Document]:
        return Call(
            "PUT", self.path(suffix), _document, body=body, headers=if_match_header(if_match)
        )

    def delete(self, name: str, if_match: str | int | None) -> Call[None]:
        return Call(
            "DELETE",
            self.path(f"receivers/{segment(name)}"),
            nothing,
            headers=if_match_header(if_match),
        )


def _receiver(name: str) -> str:
    return f"receivers/{segment(name)}"


class Alerting:
    """`client.alerting`: the tenant's Alertmanager configuration."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def receivers(self) -> list[dict[str, Any]]:
        return self._client._send(self._calls.receivers())

    def get_receiver(self, name: str) -> Document:
        return self._client._send(self._calls.get(_receiver(name)))

    def put_receiver(
        self, name: str, receiver: Mapping[str, Any], *, if_match: str | int | None = None
    ) -> Document:
        """Create or replace a receiver (Alertmanager's schema); checked before it is stored."""
        return self._client._send(self._calls.put(_receiver(name), dict(receiver), if_match))

    def delete_receiver(self, name: str, *, if_match: str | int | None = None) -> None:
        self._client._send(self._calls.delete(name, if_match))

    def get_routes(self) -> Document:
        return self._client._send(self._calls.get("routes"))

    def put_routes(
        self, routes: Sequence[Mapping[str, Any]] | None, *, if_match: str | int | None = None
    ) -> Document:
        """Replace the child routes of the tenant's root route (None clears them)."""
        items = None if routes is None else [dict(route) for route in routes]
        return self._client._send(self._calls.put("routes", {"items": items}, if_match))

    def get_global(self) -> Document:
        return self._client._send(self._calls.get("global"))

    def put_global(
        self, section: Mapping[str, Any], *, if_match: str | int | None = None
    ) -> Document:
        """Replace the global section ({} clears it)."""
        return self._client._send(self._calls.put("global", dict(section), if_match))

    def config(self) -> Document:
        """The effective configuration as Kupe renders it (credentials masked)."""
        return self._client._send(self._calls.get("config"))


class AsyncAlerting:
    """`async_client.alerting`: the tenant's Alertmanager configuration."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def receivers(self) -> list[dict[str, Any]]:
        return await self._client._send(self._calls.receivers())

    async def get_receiver(self, name: str) -> Document:
        return await self._client._send(self._calls.get(_receiver(name)))

    async def put_receiver(
        self, name: str, receiver: Mapping[str, Any], *, if_match: str | int | None = None
    ) -> Document:
        return await self._client._send(self._calls.put(_receiver(name), dict(receiver), if_match))

    async def delete_receiver(self, name: str, *, if_match: str | int | None = None) -> None:
        await self._client._send(self._calls.delete(name, if_match))

    async def get_routes(self) -> Document:
        return await self._client._send(self._calls.get("routes"))

    async def put_routes(
        self, routes: Sequence[Mapping[str, Any]] | None, *, if_match: str | int | None = None
    ) -> Document:
        items = None if routes is None else [dict(route) for route in routes]
        return await self._client._send(self._calls.put("routes", {"items": items}, if_match))

    async def get_global(self) -> Document:
        return await self._client._send(self._calls.get("global"))

    async def put_global(
        self, section: Mapping[str, Any], *, if_match: str | int | None = None
    ) -> Document:
        return await self._client._send(self._calls.put("global", dict(section), if_match))

    async def config(self) -> Document:
        return await self._client._send(self._calls.get("config"))
