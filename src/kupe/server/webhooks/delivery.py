"""One signed delivery: a POST of the event's JSON to the hook, connecting only to the address
the SSRF check passed, never following redirects. 2xx is delivered; anything else, including a
timeout, is a failure to retry."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from kupe import __version__
from kupe.core.signature import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header
from kupe.server.webhooks.ssrf import IPAddress, UnsafeUrl, safe_address

MAX_ERROR = 200


@dataclass(frozen=True)
class Attempt:
    """How one delivery went."""

    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


class Deliverer:
    """Sends deliveries on one shared HTTP client."""

    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,  # a proxy from the environment would undo the address check
                # No pooled connection is reused: one made for another name on the same
                # address must not carry this hook's delivery.
                limits=httpx.Limits(max_keepalive_connections=0),
                headers={"User-Agent": f"Kupe-Webhooks/{__version__}"},
            )
        return self._client

    async def send(
        self, url: str, secret: str, event_id: str, body: bytes, timestamp: int
    ) -> Attempt:
        started = time.perf_counter()

        def took() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            address = await safe_address(url, allow_private=self.allow_private)
        except UnsafeUrl as exc:
            return Attempt(False, None, str(exc)[:MAX_ERROR], took())
        target, host = _pinned(url, address)
        headers = {
            "Content-Type": "application/json",
            "Host": host,
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature_header(secret, timestamp, body),
        }
        extensions = {"sni_hostname": urlsplit(url).hostname or ""}
        try:
            # Streamed, and the body never read: a receiver cannot make Kupe buffer anything.
            async with self._http().stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            return Attempt(False, None, f"timed out after {self.timeout:g} s", took())
        except httpx.HTTPError as exc:
            return Attempt(False, None, _describe(exc), took())
        return Attempt(200 <= status < 300, status, None, took())

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _pinned(url: str, address: IPAddress) -> tuple[str, str]:
    """`url` with its host replaced by `address`, and the Host header it needs."""
    parts = urlsplit(url)
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host


def _describe(exc: httpx.HTTPError) -> str:
    """An error for the deliveries list: its kind, never a URL with a query string."""
    name = type(exc).__name__
    return {
        "ConnectError": "could not connect",
        "RemoteProtocolError": "the receiver broke the HTTP protocol",
        "ReadError": "the connection failed while reading",
        "WriteError": "the connection failed while sending",
    }.get(name, name)[:MAX_ERROR]
