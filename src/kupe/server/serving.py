"""Run an app under uvicorn the way Kupe's processes do: limited HTTP protocol, forwarding
headers only from KUPE_TRUSTED_PROXIES, and a callback once the socket is listening."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp

from kupe.server.protocol import HttpLimits, KupeHttpProtocol
from kupe.server.settings import Settings


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_listening: Callable[[int], None] | None) -> None:
        super().__init__(config)
        self._on_listening = on_listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._on_listening is not None and self.started and self.servers:
            bound = self.servers[0].sockets[0].getsockname()
            self._on_listening(int(bound[1]))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn waits for open responses before the app's shutdown; long-lived ones (watch
        # streams) are ended first, or stopping would hang.
        end_streams = getattr(getattr(self.config.app, "state", None), "end_streams", None)
        if callable(end_streams):
            end_streams()
        await super().shutdown(sockets)


def uvicorn_config(app: ASGIApp, settings: Settings, port: int) -> uvicorn.Config:
    """uvicorn's configuration for `app` on KUPE_HOST:`port`."""
    trusted = settings.http.trusted_proxy_list
    limits = HttpLimits(read_timeout=settings.http.read_timeout_seconds)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        http=KupeHttpProtocol.with_limits(limits),
        # uvicorn believes X-Forwarded-For from loopback by default, which lets any local
        # process pick the address its rate limits and back-off are counted against.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,
        log_config=None,
        access_log=False,
        server_header=False,
    )


def serve_app(
    app: ASGIApp,
    settings: Settings,
    port: int,
    *,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; `on_listening(port)` runs once the socket is bound."""
    server = _Server(uvicorn_config(app, settings, port), on_listening)
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's own exit status for a failed start
