"""Invoices (API §8): the tenant's monthly invoices, read-only; the running estimate of the
current month is `client.tenant.get().status.current_usage` (or `client.invoices.usage()`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kupe.schemas.billing import CurrentUsage, Invoice
from kupe.sdk._http import Call, Core, list_params, model, page, segment

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncInvoices", "Invoices"]


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, name: str | None = None) -> str:
        tail = "" if name is None else f"/{segment(name)}"
        return self.core.tenant_path(f"/invoices{tail}")

    def list(self, token: str | None) -> Call[tuple[list[Invoice], str | None]]:
        return Call("GET", self.path(), page(Invoice), params=list_params(None, token))

    def get(self, name: str) -> Call[Invoice]:
        return Call("GET", self.path(name), model(Invoice))


def _usage(estimate: CurrentUsage | None) -> CurrentUsage:
    if estimate is None:  # a server from before billing
        raise ValueError("this server reports no currentUsage")
    return estimate


class Invoices:
    """`client.invoices`: the tenant's invoices, oldest month first."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self) -> list[Invoice]:
        return self._client._send_all(self._calls.list)

    def get(self, name: str) -> Invoice:
        """One month's invoice by name (YYYY-MM); NotFound for a month without one."""
        return self._client._send(self._calls.get(name))

    def usage(self) -> CurrentUsage:
        """The running estimate of the current month."""
        return _usage(self._client.tenant.get().status.current_usage)


class AsyncInvoices:
    """`async_client.invoices`: the tenant's invoices, oldest month first."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self) -> list[Invoice]:
        return await self._client._send_all(self._calls.list)

    async def get(self, name: str) -> Invoice:
        """One month's invoice by name (YYYY-MM); NotFound for a month without one."""
        return await self._client._send(self._calls.get(name))

    async def usage(self) -> CurrentUsage:
        """The running estimate of the current month."""
        return _usage((await self._client.tenant.get()).status.current_usage)
