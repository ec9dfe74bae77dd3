"""Pure ASGI middleware: request ids, access logs and metrics, body size, content type and
JSON strictness, and headers that must not repeat."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kupe.core.errors import BadRequest, KupeError, PayloadTooLarge, UnsupportedMediaType
from kupe.server.api.errors import translate
from kupe.server.api.jsonbody import body_error
from kupe.server.metrics import Metrics

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Which of several copies would count differs between proxies and servers: refuse them all.
_SINGLE_HEADERS = (b"authorization",)
# The console's sign-in and sign-out are plain HTML forms (they work before any script runs).
FORM_PATH_PREFIX = "/console/"
_FORM_MEDIA = "application/x-www-form-urlencoded"
log = structlog.get_logger("kupe.access")


class _BodyTooLarge(HTTPException):
    """Raised from inside the body stream; FastAPI passes HTTP exceptions through as they are."""

    def __init__(self) -> None:
        super().__init__(413, PayloadTooLarge.default_message)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == _FORM_MEDIA


async def _send_error(send: Send, error: KupeError, request_id: str) -> None:
    import orjson

    body = orjson.dumps(error.body())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestMiddleware:
    """Gives each request an id, enforces body limits, and logs and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method: str = scope["method"]
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            error = _repeated_header(scope["headers"]) or self._check_body_headers(
                method, headers, scope.get("path", "")
            )
            if error is not None:
                status = error.status
                await _send_error(send, error, request_id)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > MAX_BODY_BYTES:
                        raise _BodyTooLarge()
                return message

            app_receive: Receive = limited_receive
            try:
                if method in _BODY_METHODS and _is_json(headers.get("content-type", "")):
                    body, app_receive = await _buffered(limited_receive)
                    error = body_error(body)
                    if error is not None:
                        status = error.status
                        await _send_error(send, error, request_id)
                        return
                await self.app(scope, app_receive, send_wrapper)
            except _BodyTooLarge:
                status = 413
                await _send_error(send, PayloadTooLarge(), request_id)
            except Exception as exc:
                error = translate(exc)
                log.error("request.unhandled_error", error_type=type(exc).__name__, exc_info=exc)
                if not response_started:
                    status = error.status
                    await _send_error(send, error, request_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            log.info(
                "request",
                method=method,
                path=scope.get("path"),
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _check_body_headers(
        method: str, headers: dict[str, str], path: str = ""
    ) -> KupeError | None:
        if method not in _BODY_METHODS:
            return None
        length = headers.get("content-length")
        if length is not None:
            try:
                if int(length) > MAX_BODY_BYTES:
                    return PayloadTooLarge()
            except ValueError:
                return None
        has_body = (length is not None and length != "0") or "transfer-encoding" in headers
        content_type = headers.get("content-type", "")
        if has_body and not _is_json(content_type):
            if path.startswith(FORM_PATH_PREFIX) and _is_form(content_type):
                return None
            return UnsupportedMediaType()
        return None


def _repeated_header(raw: list[tuple[bytes, bytes]]) -> KupeError | None:
    for name in _SINGLE_HEADERS:
        if sum(1 for key, _ in raw if key.lower() == name) > 1:
            header = name.decode().title()
            return BadRequest(f"Send one {header} header, not several", code="INVALID_HEADER")
    return None


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (already bounded by `receive`), and a receive that replays it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            # The client left: let the app see the disconnect as it would have.
            return b"", _replay_once(message, receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, _replay_once({"type": "http.request", "body": body, "more_body": False}, receive)


def _replay_once(first: Message, receive: Receive) -> Receive:
    """A receive that answers `first`, then whatever the real one does."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return first

    return replay


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
