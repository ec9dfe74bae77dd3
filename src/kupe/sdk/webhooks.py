"""Webhooks (API §11): `client.webhooks` manages a tenant's hooks, and `verify` checks that a
delivery a receiver got is Kupe's, unaltered and recent.

```python
from kupe.sdk.webhooks import verify

event = verify(secret, request.headers, raw_body)   # raises SignatureError otherwise
```
"""

from __future__ import annotations

import builtins
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kupe.core.signature import EVENT_ID_HEADER, SIGNATURE_HEADER, parse_signature_header, signature
from kupe.schemas.webhook import Webhook, WebhookCreated, WebhookDelivery
from kupe.sdk._http import Call, Core, if_match_header, list_params, model, nothing, page, segment
from kupe.sdk.errors import SDKError

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncWebhooks", "SignatureError", "Webhooks", "verify"]


class SignatureError(SDKError):
    """A delivery whose Kupe-Signature is missing, malformed, wrong or too old."""

    code = "INVALID_SIGNATURE"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = 300,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The event of a delivery whose signature checks out under `secret` and whose timestamp
    is within `tolerance` seconds of `now` (default: this machine's clock); SignatureError
    otherwise. `body` must be the raw bytes received, not re-serialised JSON."""
    value = _header(headers, SIGNATURE_HEADER)
    if value is None:
        raise SignatureError(f"No {SIGNATURE_HEADER} header")
    try:
        timestamp, candidates = parse_signature_header(value)
    except ValueError as exc:
        raise SignatureError(f"Malformed {SIGNATURE_HEADER} header: {exc}") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("The delivery's timestamp is outside the tolerance")
    expected = signature(secret, timestamp, body)
    # Every candidate is compared, in constant time: the secret may be being rotated.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("The signature does not match")
    try:
        event: dict[str, Any] = json.loads(body)
    except ValueError:
        raise SignatureError("The body is not JSON") from None
    event_id = _header(headers, EVENT_ID_HEADER)
    if event_id is not None and event.get("id") != event_id:
        raise SignatureError(f"{EVENT_ID_HEADER} does not match the event")
    return event


class _Calls:
    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, hook: str | None = None, tail: str = "") -> str:
        rest = "" if hook is None else f"/{segment(hook)}{tail}"
        return self.core.tenant_path(f"/webhooks{rest}")

    def list(self, limit: int | None, token: str | None) -> Call[tuple[list[Webhook], str | None]]:
        return Call("GET", self.path(), page(Webhook), params=list_params(limit, token))

    def get(self, hook: str) -> Call[Webhook]:
        return Call("GET", self.path(hook), model(Webhook))

    def create(self, url: str, events: Sequence[str], secret: str | None) -> Call[WebhookCreated]:
        body: dict[str, object] = {"url": url, "events": list(events)}
        if secret is not None:
            body["secret"] = secret
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return Call("POST", self.path(), model(WebhookCreated), body=body, headers=headers)

    def update(
        self, hook: str, body: dict[str, object], if_match: str | int | None
    ) -> Call[Webhook]:
        headers = if_match_header(if_match)
        return Call("PATCH", self.path(hook), model(Webhook), body=body, headers=headers)

    def delete(self, hook: str, if_match: str | int | None) -> Call[None]:
        return Call("DELETE", self.path(hook), nothing, headers=if_match_header(if_match))

    def deliveries(
        self, hook: str, limit: int | None, token: str | None
    ) -> Call[tuple[builtins.list[WebhookDelivery], str | None]]:
        return Call(
            "GET",
            self.path(hook, "/deliveries"),
            page(WebhookDelivery),
            params=list_params(limit, token),
        )


def _changes(
    url: str | None, events: Sequence[str] | None, secret: str | None, enabled: bool | None
) -> dict[str, object]:
    body: dict[str, object] = {}
    for key, value in (("url", url), ("secret", secret), ("enabled", enabled)):
        if value is not None:
            body[key] = value
    if events is not None:
        body["events"] = list(events)
    return body


class Webhooks:
    """`client.webhooks`: the tenant's webhooks (admin)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self, *, page_size: int | None = None) -> list[Webhook]:
        return self._client._send_all(lambda token: self._calls.list(page_size, token))

    def get(self, hook: str) -> Webhook:
        return self._client._send(self._calls.get(hook))

    def create(
        self, url: str, *, events: Sequence[str], secret: str | None = None
    ) -> WebhookCreated:
        """Create a hook; the answer's `secret` (generated if not given) is shown only here."""
        return self._client._send(self._calls.create(url, events, secret))

    def update(
        self,
        hook: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        enabled: bool | None = None,
        if_match: str | int | None = None,
    ) -> Webhook:
        body = _changes(url, events, secret, enabled)
        return self._client._send(self._calls.update(hook, body, if_match))

    def delete(self, hook: str, *, if_match: str | int | None = None) -> None:
        self._client._send(self._calls.delete(hook, if_match))

    def deliveries(
        self, hook: str, *, page_size: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        """Every attempt, newest first."""
        return self._client._send_all(lambda token: self._calls.deliveries(hook, page_size, token))


class AsyncWebhooks:
    """`async_client.webhooks`: the tenant's webhooks (admin)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self, *, page_size: int | None = None) -> list[Webhook]:
        return await self._client._send_all(lambda token: self._calls.list(page_size, token))

    async def get(self, hook: str) -> Webhook:
        return await self._client._send(self._calls.get(hook))

    async def create(
        self, url: str, *, events: Sequence[str], secret: str | None = None
    ) -> WebhookCreated:
        return await self._client._send(self._calls.create(url, events, secret))

    async def update(
        self,
        hook: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        secret: str | None = None,
        enabled: bool | None = None,
        if_match: str | int | None = None,
    ) -> Webhook:
        body = _changes(url, events, secret, enabled)
        return await self._client._send(self._calls.update(hook, body, if_match))

    async def delete(self, hook: str, *, if_match: str | int | None = None) -> None:
        await self._client._send(self._calls.delete(hook, if_match))

    async def deliveries(
        self, hook: str, *, page_size: int | None = None
    ) -> builtins.list[WebhookDelivery]:
        return await self._client._send_all(
            lambda token: self._calls.deliveries(hook, page_size, token)
        )
