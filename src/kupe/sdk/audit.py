"""The audit log (API §11): `client.audit.list(...)`, newest first (admin)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kupe.schemas.audit import AuditEntry
from kupe.sdk._http import Call, Core, list_params, page

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncAudit", "Audit"]


def _when(moment: datetime) -> str:
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.isoformat().replace("+00:00", "Z")


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def list(
        self,
        limit: int | None,
        token: str | None,
        filters: dict[str, str],
    ) -> Call[tuple[list[AuditEntry], str | None]]:
        params = {**(list_params(limit, token) or {}), **filters}
        return Call("GET", self.core.tenant_path("/audit"), page(AuditEntry), params=params)


def _filters(
    actor: str | None, target: str | None, since: datetime | None, until: datetime | None
) -> dict[str, str]:
    out: dict[str, str] = {}
    if actor is not None:
        out["actor"] = actor
    if target is not None:
        out["target"] = target
    if since is not None:
        out["since"] = _when(since)
    if until is not None:
        out["until"] = _when(until)
    return out


class Audit:
    """`client.audit`: who did what to the tenant."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(
        self,
        *,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
    ) -> list[AuditEntry]:
        filters = _filters(actor, target, since, until)
        return self._client._send_all(lambda token: self._calls.list(page_size, token, filters))


class AsyncAudit:
    """`async_client.audit`: who did what to the tenant."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(
        self,
        *,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int | None = None,
    ) -> list[AuditEntry]:
        filters = _filters(actor, target, since, until)
        return await self._client._send_all(
            lambda token: self._calls.list(page_size, token, filters)
        )
