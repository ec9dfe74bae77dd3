"""Managed secrets (API §7): definitions whose values live in the tenant's OpenBao mount."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kupe.schemas.secret import Secret, SyncTarget
from kupe.sdk._http import (
    Call,
    Core,
    if_changed,
    if_match_header,
    list_params,
    model,
    nothing,
    page,
    quoted_etag,
    segment,
)
from kupe.sdk.errors import NotFound, WaitTimeout

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncSecrets", "Secrets"]


def _targets(sync: Sequence[SyncTarget]) -> list[dict[str, object]]:
    return [target.model_dump(by_alias=True, exclude_none=True) for target in sync]


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, name: str | None = None) -> str:
        tail = "" if name is None else f"/{segment(name)}"
        return self.core.tenant_path(f"/secrets{tail}")

    def list(self, limit: int | None, token: str | None) -> Call[tuple[list[Secret], str | None]]:
        return Call("GET", self.path(), page(Secret), params=list_params(limit, token))

    def get(self, name: str) -> Call[Secret]:
        return Call("GET", self.path(name), model(Secret))

    def get_if_changed(self, name: str, resource_version: str) -> Call[Secret | None]:
        headers = {"If-None-Match": quoted_etag(resource_version)}
        return Call("GET", self.path(name), if_changed(Secret), headers=headers)

    def create(
        self, name: str, secret_path: str, sync: Sequence[SyncTarget] | None
    ) -> Call[Secret]:
        body: dict[str, object] = {"name": name, "secretPath": secret_path}
        if sync is not None:
            body["sync"] = _targets(sync)
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return Call("POST", self.path(), model(Secret), body=body, headers=headers)

    def update(
        self, name: str, sync: Sequence[SyncTarget], if_match: str | int | None
    ) -> Call[Secret]:
        body = {"sync": _targets(sync)}
        return Call(
            "PATCH", self.path(name), model(Secret), body=body, headers=if_match_header(if_match)
        )

    def delete(self, name: str, if_match: str | int | None) -> Call[None]:
        return Call("DELETE", self.path(name), nothing, headers=if_match_header(if_match))


def _timeout(name: str, timeout: float, secret: Secret | None, goal: str) -> WaitTimeout:
    seen = f" (it is {secret.status.phase})" if secret is not None else ""
    return WaitTimeout(f"Secret {name} did not become {goal} within {timeout:g}s{seen}")


class Secrets:
    """`client.secrets`: the tenant's managed secrets."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self, *, page_size: int | None = None) -> list[Secret]:
        return self._client._send_all(lambda token: self._calls.list(page_size, token))

    def get(self, name: str) -> Secret:
        return self._client._send(self._calls.get(name))

    def create(
        self, name: str, *, secret_path: str, sync: Sequence[SyncTarget] | None = None
    ) -> Secret:
        """Define a managed secret: the value at `secret_path` goes to every `sync` target."""
        return self._client._send(self._calls.create(name, secret_path, sync))

    def update(
        self, name: str, *, sync: Sequence[SyncTarget], if_match: str | int | None = None
    ) -> Secret:
        """Replace every target; an empty list stops syncing and removes the copies."""
        return self._client._send(self._calls.update(name, sync, if_match))

    def delete(self, name: str, *, if_match: str | int | None = None) -> None:
        """Remove the copies, then the definition; the OpenBao value is untouched."""
        self._client._send(self._calls.delete(name, if_match))

    def wait(self, name: str, *, timeout: float = 300.0, poll_interval: float = 1.0) -> Secret:
        """Poll until every target holds the current value (phase Active)."""
        client = self._client
        deadline = client._monotonic() + timeout
        secret = self.get(name)
        while secret.status.phase != "Active":
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise _timeout(name, timeout, secret, "Active")
            client._sleep(min(poll_interval, remaining))
            newer = client._send(self._calls.get_if_changed(name, secret.resource_version))
            secret = newer or secret
        return secret

    def wait_deleted(
        self, name: str, *, timeout: float = 300.0, poll_interval: float = 1.0
    ) -> None:
        """Poll until the definition is gone (404)."""
        client = self._client
        deadline = client._monotonic() + timeout
        secret: Secret | None = None
        while True:
            try:
                secret = self.get(name)
            except NotFound:
                return
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise _timeout(name, timeout, secret, "deleted")
            client._sleep(min(poll_interval, remaining))


class AsyncSecrets:
    """`async_client.secrets`: the tenant's managed secrets."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self, *, page_size: int | None = None) -> list[Secret]:
        return await self._client._send_all(lambda token: self._calls.list(page_size, token))

    async def get(self, name: str) -> Secret:
        return await self._client._send(self._calls.get(name))

    async def create(
        self, name: str, *, secret_path: str, sync: Sequence[SyncTarget] | None = None
    ) -> Secret:
        return await self._client._send(self._calls.create(name, secret_path, sync))

    async def update(
        self, name: str, *, sync: Sequence[SyncTarget], if_match: str | int | None = None
    ) -> Secret:
        return await self._client._send(self._calls.update(name, sync, if_match))

    async def delete(self, name: str, *, if_match: str | int | None = None) -> None:
        await self._client._send(self._calls.delete(name, if_match))

    async def wait(
        self,
        name: str,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the same signature as the sync client's
        poll_interval: float = 1.0,
    ) -> Secret:
        """Poll until every target holds the current value (phase Active)."""
        client = self._client
        deadline = client._monotonic() + timeout
        secret = await self.get(name)
        while secret.status.phase != "Active":
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise _timeout(name, timeout, secret, "Active")
            await client._sleep(min(poll_interval, remaining))
            newer = await client._send(self._calls.get_if_changed(name, secret.resource_version))
            secret = newer or secret
        return secret

    async def wait_deleted(
        self,
        name: str,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the same signature as the sync client's
        poll_interval: float = 1.0,
    ) -> None:
        """Poll until the definition is gone (404)."""
        client = self._client
        deadline = client._monotonic() + timeout
        secret: Secret | None = None
        while True:
            try:
                secret = await self.get(name)
            except NotFound:
                return
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise _timeout(name, timeout, secret, "deleted")
            await client._sleep(min(poll_interval, remaining))
