"""What Client and AsyncClient share: a request description, the retry policy, parsing."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from kupe import __version__
from kupe.core.etag import etag
from kupe.schemas.common import ItemList
from kupe.sdk.config import ClientSettings
from kupe.sdk.errors import ConfigurationError, error_from_response, parse_retry_after

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Page = tuple[list[M], str | None]
PageCall = Callable[[str | None], "Call[Page[M]]"]
"""Builds the request for the page after a continue token (None: the first page)."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = f"kupe-sdk/{__version__} httpx/{httpx.__version__}"
# Proxies in front of Kupe answer 502/504 when it restarts; those are as retryable as a 503.
RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; Retry-After, when sent, sets the delay instead."""

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry number `attempt` (0-based): half fixed, half random."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


NO_RETRIES = RetryPolicy(max_retries=0)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] | None = None
    body: object = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def replayable(self) -> bool:
        """Safe to send again after an unknown outcome: idempotent, or an Idempotency-Key."""
        return self.method in IDEMPOTENT_METHODS or "Idempotency-Key" in self.headers


class Core:
    """Settings plus the sans-IO halves of sending: build the request, judge the answer."""

    def __init__(self, settings: ClientSettings, retry: RetryPolicy, rng: random.Random) -> None:
        self.settings = settings
        self.retry = retry
        self.rng = rng

    def tenant_path(self, suffix: str = "") -> str:
        tenant = self.settings.tenant
        if not tenant:
            raise ConfigurationError(
                "No tenant configured: set KUPE_TENANT, pass --tenant (tenant= in Python) "
                "or use a profile"
            )
        return f"/api/v1/tenants/{segment(tenant)}{suffix}"

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call[T]) -> httpx.Request:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **call.headers}
        # One id for every attempt of a call, so the server's logs tie the retries together.
        headers.setdefault("X-Request-Id", uuid.uuid4().hex)
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return http.build_request(
            call.method,
            self.settings.api_url + call.path,
            params=dict(call.params) if call.params else None,
            json=call.body,
            headers=headers,
        )

    def delay_after_error(self, call: Call[T], attempt: int, error: httpx.TransportError) -> float:
        """Seconds to wait before resending after a transport error, or -1 to give up."""
        if attempt >= self.retry.max_retries:
            return -1
        # A refused connection never reached the server, so even a plain POST may be resent.
        never_sent = isinstance(
            error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )
        if never_sent or call.replayable:
            return self.retry.backoff(attempt, self.rng)
        return -1

    def delay_after_response(self, call: Call[T], attempt: int, response: httpx.Response) -> float:
        """Seconds to wait before resending after this answer, or -1 to use the answer."""
        status = response.status_code
        if attempt >= self.retry.max_retries:
            return -1
        # 429 comes from the rate limiter before the request is handled: always safe to resend.
        if status != 429 and not (status in RETRY_STATUSES and call.replayable):
            return -1
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None:
            return min(retry_after, self.retry.retry_after_max)
        return self.retry.backoff(attempt, self.rng)

    @staticmethod
    def finish(call: Call[T], response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise error_from_response(response)
        return call.parse(response)


def segment(value: str) -> str:
    """A path segment, percent-encoded (member emails carry `@` and maybe `+`)."""
    return quote(value, safe="")


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """Parse a JSON body as `cls`."""

    def parse(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content)

    return parse


def page(cls: type[M]) -> Callable[[httpx.Response], tuple[list[M], str | None]]:
    """Parse a list body: the items and the continue token, if any."""

    def parse(response: httpx.Response) -> tuple[list[M], str | None]:
        parsed = ItemList[cls].model_validate_json(response.content)  # type: ignore[valid-type]
        return list(parsed.items), parsed.continue_

    return parse


def if_changed(cls: type[M]) -> Callable[[httpx.Response], M | None]:
    """Parse a conditional GET: None on 304 Not Modified."""

    def parse(response: httpx.Response) -> M | None:
        if response.status_code == 304:
            return None
        return cls.model_validate_json(response.content)

    return parse


def nothing(response: httpx.Response) -> None:
    return None


def quoted_etag(value: str | int) -> str:
    """An If-Match / If-None-Match value from a resourceVersion, quoted or not."""
    text = str(value).strip()
    if text == "*" or text.startswith(('"', "W/")):
        return text
    return etag(text)


def if_match_header(value: str | int | None) -> dict[str, str]:
    """The If-Match header for an optional resourceVersion."""
    return {} if value is None else {"If-Match": quoted_etag(value)}


def list_params(limit: int | None, token: str | None) -> dict[str, str] | None:
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if token is not None:
        params["continue"] = token
    return params or None
