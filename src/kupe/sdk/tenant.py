"""The tenant itself (API §3): read it, change its plan and limit enforcement."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kupe.schemas.tenant import Tenant, TenantUpdate
from kupe.sdk._http import Call, Core, if_match_header, model

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncTenantResource", "TenantResource"]


def _body(update: TenantUpdate) -> dict[str, object]:
    body: dict[str, object] = update.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return body


Change = Callable[[Tenant], TenantUpdate | None]


def _update(plan: str | None, metrics: bool | None, logs: bool | None) -> TenantUpdate:
    # Only the fields given are sent: a merge of what the caller asked to change.
    fields = {"plan": plan, "enforce_metrics_limit": metrics, "enforce_log_limit": logs}
    return TenantUpdate(**{k: v for k, v in fields.items() if v is not None})


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def get(self) -> Call[Tenant]:
        return Call("GET", self.core.tenant_path(), model(Tenant))

    def update(self, change: TenantUpdate, if_match: str | int | None) -> Call[Tenant]:
        return Call(
            "PATCH",
            self.core.tenant_path(),
            model(Tenant),
            body=_body(change),
            headers=if_match_header(if_match),
        )


class TenantResource:
    """`client.tenant`: the configured tenant."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def get(self) -> Tenant:
        """The tenant, its members and its status."""
        return self._client._send(self._calls.get())

    def update(
        self,
        *,
        plan: str | None = None,
        enforce_metrics_limit: bool | None = None,
        enforce_log_limit: bool | None = None,
        if_match: str | int | None = None,
    ) -> Tenant:
        """Change the plan or limit enforcement; Conflict (PLAN_DOWNGRADE_BLOCKED) if over."""
        change = _update(plan, enforce_metrics_limit, enforce_log_limit)
        return self._client._send(self._calls.update(change, if_match))

    def modify(self, change: Change, *, attempts: int = 5) -> Tenant:
        """Read, apply `change` (None: nothing to do), write with If-Match; re-read on 412."""
        return self._client._modify(
            self._calls.get,
            change,
            lambda tenant, update: self._calls.update(update, tenant.resource_version),
            attempts,
        )


class AsyncTenantResource:
    """`async_client.tenant`: the configured tenant."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def get(self) -> Tenant:
        """The tenant, its members and its status."""
        return await self._client._send(self._calls.get())

    async def update(
        self,
        *,
        plan: str | None = None,
        enforce_metrics_limit: bool | None = None,
        enforce_log_limit: bool | None = None,
        if_match: str | int | None = None,
    ) -> Tenant:
        """Change the plan or limit enforcement; Conflict (PLAN_DOWNGRADE_BLOCKED) if over."""
        change = _update(plan, enforce_metrics_limit, enforce_log_limit)
        return await self._client._send(self._calls.update(change, if_match))

    async def modify(self, change: Change, *, attempts: int = 5) -> Tenant:
        """Read, apply `change` (None: nothing to do), write with If-Match; re-read on 412."""
        return await self._client._modify(
            self._calls.get,
            change,
            lambda tenant, update: self._calls.update(update, tenant.resource_version),
            attempts,
        )
