"""A TCP proxy the test controls, to take a database away from a running Kupe and give it back.

It runs its own asyncio loop in a daemon thread, so it works the same from sync and async tests
and while real server processes talk through it. Three states:

- ``up``: bytes flow both ways.
- ``cut()``: every open connection is reset and new ones are reset on accept, as when the
  database server has crashed; clients notice at once.
- ``blackhole()``: connections stay open but no byte moves, new ones are accepted and left
  hanging, as in a network partition; only the clients' own timeouts end their waits.

``restore()`` returns to ``up``; connections that survived a blackhole carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")
_CHUNK = 64 * 1024


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``upstream_host``:``upstream_port``; see the module docs."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.state = "up"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections_seen = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- control ----------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every connection and refuse new ones until ``restore()``."""
        self._call(self._set("cut"))

    def blackhole(self) -> None:
        """Stop moving bytes without closing anything, until ``restore()``."""
        self._call(self._set("blackhole"))

    def restore(self) -> None:
        """Let bytes flow again."""
        self._call(self._set("up"))

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    # -- internals --------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._set("cut")
        for task in list(self._tasks):
            task.cancel()

    async def _set(self, state: str) -> None:
        assert self._flowing is not None
        self.state = state
        if state == "up":
            self._flowing.set()
            return
        self._flowing.clear()
        if state == "cut":
            for writer in list(self._writers):
                _reset(writer)
            self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_seen += 1
        if self.state == "cut":
            _reset(writer)
            return
        self._writers.add(writer)
        try:
            assert self._flowing is not None
            await self._flowing.wait()  # a blackhole leaves the client waiting here
            if self.state == "cut" or writer not in self._writers:
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            _reset(writer)
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, writer)),
            asyncio.create_task(self._pump(up_reader, writer, up_writer)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        source_writer: asyncio.StreamWriter,
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if sink not in self._writers:
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for end in (sink, source_writer):
                if end in self._writers:
                    self._writers.discard(end)
                    with contextlib.suppress(Exception):
                        end.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a dead server's host would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    """A started proxy to ``host``:``port``, closed on exit."""
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.close()
