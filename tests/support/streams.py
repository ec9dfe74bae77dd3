"""The harness's app served by a real uvicorn on loopback, in the test's own event loop (the
fake clock and `kupe.step()` still drive it), and a reader of watch streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn

from tests.support.harness import Kupe, TenantCreds


@contextlib.asynccontextmanager
async def served(kupe: Kupe) -> AsyncIterator[str]:
    """Serve `kupe.app` on 127.0.0.1 (its lifespan is already running); yields the base URL."""
    config = uvicorn.Config(kupe.app, host="127.0.0.1", port=0, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        kupe.app.state.end_streams()
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Watch:
    """A watch stream read in the background: its lines, parsed, in a queue."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for line in self.response.aiter_lines():
                if line.strip():
                    self.lines.put_nowait(json.loads(line))
        except httpx.HTTPError:
            pass
        finally:
            self.lines.put_nowait(None)

    async def next(self, wait: float = 5.0) -> dict[str, Any] | None:
        """The next line (None: the stream ended)."""
        return await asyncio.wait_for(self.lines.get(), wait)

    async def until(self, done: Any, wait: float = 10.0) -> list[dict[str, Any]]:
        """Lines (BOOKMARKs left out) until `done(line)` holds for one, which is included."""
        seen: list[dict[str, Any]] = []
        while True:
            line = await self.next(wait)
            assert line is not None, f"stream ended after {seen}"
            if line["type"] == "BOOKMARK":
                continue
            seen.append(line)
            if done(line):
                return seen

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        await self.response.aclose()


@contextlib.asynccontextmanager
async def watching(
    client: httpx.AsyncClient, creds: TenantCreds, path: str = "/clusters", **params: str
) -> AsyncIterator[Watch]:
    """Open `GET path?watch=true&params` with the tenant's key and read it in the background."""
    request = client.build_request(
        "GET", creds.url(path), params={"watch": "true", **params}, headers=creds.headers
    )
    response = await client.send(request, stream=True)
    assert response.status_code == 200, (await response.aread()).decode()
    watch = Watch(response)
    try:
        yield watch
    finally:
        await watch.close()
