"""uvicorn's httptools protocol with limits, and the Kupe error body for HTTP-level errors.

httptools buffers a header until it is complete, with no limit of its own: one 60 MB header
stalls the event loop and the memory grows with it. This protocol bounds the request line,
each header, all headers together and their count (431 / 414), gives a client a deadline for
each read of a request (408), and answers malformed requests with the Kupe error body.
"""

from __future__ import annotations

import asyncio
import http
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kupe.core.errors import (
    BadRequest,
    HeadersTooLarge,
    KupeError,
    RequestTimeout,
    UriTooLong,
)


@dataclass(frozen=True)
class HttpLimits:
    """What one request may send before its body, and how long a client may pause."""

    request_line: int = 8 * 1024
    header: int = 16 * 1024
    headers_total: int = 64 * 1024
    header_count: int = 100
    read_timeout: float = 10.0
    # After refusing a request, keep reading (and dropping) for a moment, so the client
    # reads the answer instead of a connection reset.
    linger_seconds: float = 2.0


class _Refused(Exception):
    """Raised inside a parser callback: stops parsing; `data_received` answers with it."""

    def __init__(self, error: KupeError) -> None:
        super().__init__(error.message)
        self.error = error


def error_bytes(error: KupeError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response carrying the Kupe error body; the connection then closes."""
    body = orjson.dumps(error.body())
    phrase = http.HTTPStatus(error.status).phrase
    lines = [f"HTTP/1.1 {error.status} {phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"x-request-id: " + uuid.uuid4().hex.encode(),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class KupeHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that counts what its parser callbacks are handed."""

    limits: ClassVar[HttpLimits] = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._head_bytes = 0  # exact: request line and complete headers
        self._head_reads = 0  # coarse: whole reads while a header is still incomplete
        self._header_count = 0
        self._refused = False
        self._refusal: KupeError | None = None
        self._read_timer: asyncio.TimerHandle | None = None

    @classmethod
    def with_limits(cls, limits: HttpLimits) -> type[KupeHttpProtocol]:
        """This protocol with other limits, for uvicorn's `http=` (it takes a class)."""
        return type(cls.__name__, (cls,), {"limits": limits})

    # -- connection -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: drop what the client still sends
        whole_read_in_head = self._in_head
        super().data_received(data)
        if self._refused or self.transport.is_closing():
            return
        if self._in_head and whole_read_in_head:
            # httptools hands a header over only once it is complete; until then, count reads.
            self._head_reads += len(data)
            if self._head_reads > self.limits.headers_total + self.limits.request_line:
                self._refuse(HeadersTooLarge(self._too_large()))
                return
        # Most requests arrive in one read: then no timer is armed at all.
        if self._waiting_for_client():
            self._arm_read_timer()
        elif self._read_timer is not None:
            self._cancel_read_timer()

    def send_400_response(self, msg: str) -> None:
        """Every answer the protocol gives itself carries the Kupe error body."""
        self._refuse(
            self._refusal or BadRequest("Malformed HTTP request", code="MALFORMED_REQUEST")
        )

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = self._head_reads = self._header_count = 0
        self._refusal = None

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.request_line:
            self._stop(UriTooLong(f"The request line is longer than {self._kib('request_line')}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_bytes += len(name) + len(value) + 4
        if len(name) + len(value) > self.limits.header:
            self._stop(HeadersTooLarge(f"A request header is larger than {self._kib('header')}"))
        if self._header_count > self.limits.header_count:
            self._stop(
                HeadersTooLarge(f"A request may carry at most {self.limits.header_count} headers")
            )
        if self._head_bytes > self.limits.headers_total:
            self._stop(HeadersTooLarge(self._too_large()))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    # -- helpers ----------------------------------------------------------------------------

    def _stop(self, error: KupeError) -> None:
        # uvicorn turns any callback exception into send_400_response; remember the real one.
        self._refusal = error
        raise _Refused(error)

    def _refuse(self, error: KupeError) -> None:
        self._refused = True
        self._cancel_read_timer()
        if self.transport.is_closing():
            return
        self.transport.write(error_bytes(error, self.server_state.default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()
            self.loop.call_later(self.limits.linger_seconds, self.transport.close)
        else:
            self.transport.close()

    def _waiting_for_client(self) -> bool:
        """True while a request is partly received and its rest is the client's to send."""
        if self._in_head:
            return True
        cycle = self.cycle
        return (
            cycle is not None
            and cycle.more_body
            and not cycle.response_complete
            and not self.flow.read_paused
        )

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._in_head and idle:
            self._refuse(RequestTimeout("The request headers were not received in time"))
        else:
            # No request began (nothing to answer), a body stalled (the app sees a
            # disconnect), or an answer is still being written: close.
            self.transport.close()

    def _kib(self, limit: str) -> str:
        return f"{getattr(self.limits, limit) // 1024} KiB"

    def _too_large(self) -> str:
        return f"Request headers are larger than {self._kib('headers_total')} in all"
