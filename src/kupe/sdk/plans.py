"""Plans (API §2): the public catalogue; no credential needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kupe.schemas.plan import Plan
from kupe.sdk._http import Call, list_params, model, page, segment

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncPlans", "Plans"]

PATH = "/api/v1/plans"


def _list(token: str | None) -> Call[tuple[list[Plan], str | None]]:
    return Call("GET", PATH, page(Plan), params=list_params(None, token))


def _get(name: str) -> Call[Plan]:
    return Call("GET", f"{PATH}/{segment(name)}", model(Plan))


class Plans:
    """`client.plans`: the plan catalogue."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self) -> list[Plan]:
        """Every plan, sorted by name."""
        return self._client._send_all(_list)

    def get(self, name: str) -> Plan:
        """One plan by name."""
        return self._client._send(_get(name))


class AsyncPlans:
    """`async_client.plans`: the plan catalogue."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self) -> list[Plan]:
        """Every plan, sorted by name."""
        return await self._client._send_all(_list)

    async def get(self, name: str) -> Plan:
        """One plan by name."""
        return await self._client._send(_get(name))
