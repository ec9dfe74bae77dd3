"""Client (sync) and AsyncClient (async): settings, the retrying send loop, the resources."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import httpx
from pydantic import BaseModel

from kupe.sdk._http import Call, Core, PageCall, RetryPolicy
from kupe.sdk.alerting import Alerting, AsyncAlerting
from kupe.sdk.apikeys import ApiKeys, AsyncApiKeys
from kupe.sdk.audit import AsyncAudit, Audit
from kupe.sdk.clusters import AsyncClusters, Clusters
from kupe.sdk.config import ClientSettings, resolve_settings
from kupe.sdk.errors import PreconditionFailed, TransportError
from kupe.sdk.invoices import AsyncInvoices, Invoices
from kupe.sdk.members import AsyncMembers, Members
from kupe.sdk.plans import AsyncPlans, Plans
from kupe.sdk.secrets import AsyncSecrets, Secrets
from kupe.sdk.tenant import AsyncTenantResource, TenantResource
from kupe.sdk.webhooks import AsyncWebhooks, Webhooks

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
U = TypeVar("U")
DEFAULT_TIMEOUT = 30.0


def _check_attempts(attempts: int) -> None:
    if attempts < 1:
        raise ValueError("attempts must be at least 1")


def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> TransportError:
    return TransportError(
        f"Could not reach {request.url.scheme}://{request.url.netloc.decode()}: "
        f"{type(exc).__name__}: {exc or 'no details'}",
        request_id=request.headers.get("x-request-id"),
    )


class Client:
    """Synchronous Kupe API client; use it as a context manager or call close()."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        api_key: str | None = None,
        tenant: str | None = None,
        profile: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        watch: bool | None = None,
    ) -> None:
        """Arguments win over KUPE_API_URL, KUPE_API_KEY, KUPE_TENANT; those over `profile`.
        `watch`: whether wait() may watch (None: when the client talks over the network)."""
        settings = resolve_settings(
            api_url=api_url, api_key=api_key, tenant=tenant, profile=profile
        )
        self._core = Core(settings, retry or RetryPolicy(), rng or random.Random())  # noqa: S311
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
        self._sleep = sleep
        self._monotonic = monotonic
        self._watch = watch
        self.clusters = Clusters(self)
        self.apikeys = ApiKeys(self)
        self.members = Members(self)
        self.secrets = Secrets(self)
        self.alerting = Alerting(self)
        self.webhooks = Webhooks(self)
        self.audit = Audit(self)
        self.tenant = TenantResource(self)
        self.plans = Plans(self)
        self.invoices = Invoices(self)

    @property
    def settings(self) -> ClientSettings:
        """The resolved API URL, API key, tenant and profile."""
        return self._core.settings

    def _send(self, call: Call[T]) -> T:
        request = self._core.build(self._http, call)
        attempt = 0
        while True:
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                delay = self._core.delay_after_error(call, attempt, exc)
                if delay < 0:
                    raise _transport_error(exc, request) from exc
            else:
                delay = self._core.delay_after_response(call, attempt, response)
                if delay < 0:
                    return self._core.finish(call, response)
                response.close()
            self._sleep(delay)
            attempt += 1

    def _send_all(self, page: PageCall[M]) -> list[M]:
        """Every item of a list, following continue tokens."""
        items: list[M] = []
        token: str | None = None
        while True:
            batch, token = self._send(page(token))
            items.extend(batch)
            if token is None:
                return items

    def _modify(
        self,
        read: Callable[[], Call[M]],
        change: Callable[[M], U | None],
        write: Callable[[M, U], Call[M]],
        attempts: int,
    ) -> M:
        """Read, change, write with If-Match; on 412 someone else wrote first, so start over."""
        _check_attempts(attempts)
        for attempt in range(attempts):
            current = self._send(read())
            update = change(current)
            if update is None:
                return current
            try:
                return self._send(write(current, update))
            except PreconditionFailed:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection pool (unless the httpx client was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """Asynchronous Kupe API client; use it as an async context manager or call aclose()."""

    def __init__(
        self,
        api_url: str | None = None,
        *,
        api_key: str | None = None,
        tenant: str | None = None,
        profile: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        watch: bool | None = None,
    ) -> None:
        """Arguments win over KUPE_API_URL, KUPE_API_KEY, KUPE_TENANT; those over `profile`.
        `watch`: whether wait() may watch (None: when the client talks over the network)."""
        settings = resolve_settings(
            api_url=api_url, api_key=api_key, tenant=tenant, profile=profile
        )
        self._core = Core(settings, retry or RetryPolicy(), rng or random.Random())  # noqa: S311
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._sleep = sleep
        self._monotonic = monotonic
        self._watch = watch
        self.clusters = AsyncClusters(self)
        self.apikeys = AsyncApiKeys(self)
        self.members = AsyncMembers(self)
        self.secrets = AsyncSecrets(self)
        self.alerting = AsyncAlerting(self)
        self.webhooks = AsyncWebhooks(self)
        self.audit = AsyncAudit(self)
        self.tenant = AsyncTenantResource(self)
        self.plans = AsyncPlans(self)
        self.invoices = AsyncInvoices(self)

    @property
    def settings(self) -> ClientSettings:
        """The resolved API URL, API key, tenant and profile."""
        return self._core.settings

    async def _send(self, call: Call[T]) -> T:
        request = self._core.build(self._http, call)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = self._core.delay_after_error(call, attempt, exc)
                if delay < 0:
                    raise _transport_error(exc, request) from exc
            else:
                delay = self._core.delay_after_response(call, attempt, response)
                if delay < 0:
                    return self._core.finish(call, response)
                await response.aclose()
            await self._sleep(delay)
            attempt += 1

    async def _send_all(self, page: PageCall[M]) -> list[M]:
        """Every item of a list, following continue tokens."""
        items: list[M] = []
        token: str | None = None
        while True:
            batch, token = await self._send(page(token))
            items.extend(batch)
            if token is None:
                return items

    async def _modify(
        self,
        read: Callable[[], Call[M]],
        change: Callable[[M], U | None],
        write: Callable[[M, U], Call[M]],
        attempts: int,
    ) -> M:
        """Read, change, write with If-Match; on 412 someone else wrote first, so start over."""
        _check_attempts(attempts)
        for attempt in range(attempts):
            current = await self._send(read())
            update = change(current)
            if update is None:
                return current
            try:
                return await self._send(write(current, update))
            except PreconditionFailed:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        """Close the connection pool (unless the httpx client was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
