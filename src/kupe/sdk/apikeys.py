"""API keys (API §5): list, create (the raw key is returned once) and revoke; admin only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kupe.schemas.apikey import ApiKey, ApiKeyCreated, Role
from kupe.sdk._http import Call, Core, list_params, model, nothing, page, segment

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["ApiKeys", "AsyncApiKeys"]


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, key_id: str | None = None) -> str:
        tail = "" if key_id is None else f"/{segment(key_id)}"
        return self.core.tenant_path(f"/apikeys{tail}")

    def list(self, limit: int | None, token: str | None) -> Call[tuple[list[ApiKey], str | None]]:
        return Call("GET", self.path(), page(ApiKey), params=list_params(limit, token))

    def create(
        self, display_name: str, role: Role, expires_at: datetime | None
    ) -> Call[ApiKeyCreated]:
        body: dict[str, object] = {"displayName": display_name, "role": role}
        if expires_at is not None:
            moment = expires_at if expires_at.tzinfo else expires_at.replace(tzinfo=UTC)
            body["expiresAt"] = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return Call("POST", self.path(), model(ApiKeyCreated), body=body)

    def delete(self, key_id: str) -> Call[None]:
        return Call("DELETE", self.path(key_id), nothing)


class ApiKeys:
    """`client.apikeys`: the tenant's API keys."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self, *, page_size: int | None = None) -> list[ApiKey]:
        """Every API key's metadata (never the raw key)."""
        return self._client._send_all(lambda token: self._calls.list(page_size, token))

    def create(
        self, *, display_name: str, role: Role, expires_at: datetime | None = None
    ) -> ApiKeyCreated:
        """Issue a key; the returned `key` is the raw secret, shown only this once."""
        return self._client._send(self._calls.create(display_name, role, expires_at))

    def delete(self, key_id: str) -> None:
        """Revoke a key (`ak-...`); it stops working at once."""
        self._client._send(self._calls.delete(key_id))


class AsyncApiKeys:
    """`async_client.apikeys`: the tenant's API keys."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self, *, page_size: int | None = None) -> list[ApiKey]:
        """Every API key's metadata (never the raw key)."""
        return await self._client._send_all(lambda token: self._calls.list(page_size, token))

    async def create(
        self, *, display_name: str, role: Role, expires_at: datetime | None = None
    ) -> ApiKeyCreated:
        """Issue a key; the returned `key` is the raw secret, shown only this once."""
        return await self._client._send(self._calls.create(display_name, role, expires_at))

    async def delete(self, key_id: str) -> None:
        """Revoke a key (`ak-...`); it stops working at once."""
        await self._client._send(self._calls.delete(key_id))
