"""Members (API §6): who may use the tenant; writes take the tenant's ETag as If-Match."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kupe.schemas.tenant import MemberView, Role
from kupe.sdk._http import (
    Call,
    Core,
    if_match_header,
    list_params,
    model,
    nothing,
    page,
    segment,
)

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncMembers", "Members"]


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, email: str | None = None) -> str:
        tail = "" if email is None else f"/{segment(email)}"
        return self.core.tenant_path(f"/members{tail}")

    def list(
        self, limit: int | None, token: str | None
    ) -> Call[tuple[list[MemberView], str | None]]:
        return Call("GET", self.path(), page(MemberView), params=list_params(limit, token))

    def add(self, email: str, role: Role, if_match: str | int | None) -> Call[MemberView]:
        body = {"email": email, "role": role}
        return Call(
            "POST", self.path(), model(MemberView), body=body, headers=if_match_header(if_match)
        )

    def update(self, email: str, role: Role, if_match: str | int | None) -> Call[MemberView]:
        return Call(
            "PATCH",
            self.path(email),
            model(MemberView),
            body={"role": role},
            headers=if_match_header(if_match),
        )

    def remove(self, email: str, if_match: str | int | None) -> Call[None]:
        return Call("DELETE", self.path(email), nothing, headers=if_match_header(if_match))


class Members:
    """`client.members`: the tenant's members; `if_match` is the tenant's resourceVersion."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self, *, page_size: int | None = None) -> list[MemberView]:
        """Every member with their role."""
        return self._client._send_all(lambda token: self._calls.list(page_size, token))

    def add(self, email: str, *, role: Role, if_match: str | int | None = None) -> MemberView:
        """Add a member; Conflict if the email is already one."""
        return self._client._send(self._calls.add(email, role, if_match))

    def update(self, email: str, *, role: Role, if_match: str | int | None = None) -> MemberView:
        """Change a member's role; Conflict (LAST_ADMIN) when demoting the last admin."""
        return self._client._send(self._calls.update(email, role, if_match))

    def remove(self, email: str, *, if_match: str | int | None = None) -> None:
        """Remove a member; not yourself, and not the last admin."""
        self._client._send(self._calls.remove(email, if_match))


class AsyncMembers:
    """`async_client.members`: the tenant's members; `if_match` is the tenant's version."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self, *, page_size: int | None = None) -> list[MemberView]:
        """Every member with their role."""
        return await self._client._send_all(lambda token: self._calls.list(page_size, token))

    async def add(self, email: str, *, role: Role, if_match: str | int | None = None) -> MemberView:
        """Add a member; Conflict if the email is already one."""
        return await self._client._send(self._calls.add(email, role, if_match))

    async def update(
        self, email: str, *, role: Role, if_match: str | int | None = None
    ) -> MemberView:
        """Change a member's role; Conflict (LAST_ADMIN) when demoting the last admin."""
        return await self._client._send(self._calls.update(email, role, if_match))

    async def remove(self, email: str, *, if_match: str | int | None = None) -> None:
        """Remove a member; not yourself, and not the last admin."""
        await self._client._send(self._calls.remove(email, if_match))
