"""Watch benchmark: 1,000 watchers on one `kupe serve`, and what the outbox costs creates.

1. Starts a real `kupe serve` (SQLite, or PostgreSQL with --db postgresql), opens `--watchers`
   concurrent watch streams (`GET .../clusters?watch=true`, NDJSON) from this process, and
   reports the server's RSS per watcher. Then it creates `--creates` clusters one after the
   other and measures, for every watcher, the time from the POST's answer (the commit) to the
   ADDED line arriving: p50, p99 and max over all deliveries. The watchers' own parsing shares
   the machine with the server, so the figures include the client side.
2. Creates per second through the in-process app (httpx ASGITransport, 16 in flight), rounds
   alternating with the outbox on and off (`Database.outbox = None`: no events are written),
   and the ratio.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the process and PostgreSQL helpers live with the tests

from tests.support.postgres import postgres_server  # noqa: E402
from tests.support.server_process import process_group  # noqa: E402

BENCH_ENV = {
    "KUPE_LOG_LEVEL": "warning",
    "KUPE_RATE_LIMIT_RPS": "1000000",
    "KUPE_RATE_LIMIT_BURST": "1000000",
    "KUPE_RECONCILER": "off",  # only the API: creates stay Pending, nothing else changes
}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Watchers:
    """`count` watch streams; for each cluster name, when each watcher saw it ADDED."""

    def __init__(self, url: str, key: str, count: int) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.count = count
        self.arrivals: dict[str, list[float]] = {}
        self.open = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def _one(self, client: httpx.AsyncClient) -> None:
        params = {"watch": "true"}
        for _attempt in range(50):
            async with client.stream(
                "GET", "/api/v1/tenants/default/clusters", params=params, headers=self.headers
            ) as response:
                if response.status_code in (429, 503):  # a burst of opens: try again
                    await asyncio.sleep(0.5)
                    continue
                response.raise_for_status()
                await self._read(response)
                return

    async def _read(self, response: httpx.Response) -> None:
        self.open += 1
        async for line in response.aiter_lines():
            if line.startswith('{"type":"ADDED"'):
                # Cheap: the name is the object's first field.
                start = line.index('"name":"') + 8
                name = line[start : line.index('"', start)]
                self.arrivals.setdefault(name, []).append(time.monotonic())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=self.count + 10, max_keepalive_connections=0)
        timeout = httpx.Timeout(60, read=None)
        async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=timeout) as client:
            self._tasks = [asyncio.create_task(self._one(client)) for _ in range(self.count)]
            try:
                yield
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)


async def watch_scenario(url: str, key: str, pid: int, watchers: int, creates: int) -> None:
    before = rss_bytes(pid)
    group = Watchers(url, key, watchers)
    async with group.running(), httpx.AsyncClient(base_url=url, timeout=60) as api:
        deadline = time.monotonic() + 120
        while group.open < watchers and time.monotonic() < deadline:  # noqa: ASYNC110  # a count
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let the server settle after the burst of opens
        during = rss_bytes(pid)
        latencies: list[float] = []
        headers = {"Authorization": f"Bearer {key}"}
        cpu_before = cpu_seconds(pid)
        for index in range(creates):
            name = f"w-{index:04d}-{uuid.uuid4().hex[:4]}"
            body = {"name": name, "displayName": name, "type": "shared"}
            response = await api.post(
                "/api/v1/tenants/default/clusters", json=body, headers=headers
            )
            committed = time.monotonic()
            response.raise_for_status()
            wait_until = committed + 10
            # Polling a count of arrivals; its 2 ms granularity is below what is measured.
            while (  # noqa: ASYNC110
                len(group.arrivals.get(name, ())) < group.open and time.monotonic() < wait_until
            ):
                await asyncio.sleep(0.002)
            latencies.extend(t - committed for t in group.arrivals.get(name, ()))
            await asyncio.sleep(0.05)
        server_cpu = cpu_seconds(pid) - cpu_before
    per_watcher = (during - before) / max(1, group.open)
    print(f"watchers open: {group.open} of {watchers}")
    print(
        f"server RSS: {before / 2**20:.1f} MiB before, {during / 2**20:.1f} MiB with the "
        f"watchers: {per_watcher / 1024:.1f} KiB per watcher"
    )
    expected = creates * group.open
    print(
        f"commit -> delivery over {len(latencies)} deliveries (expected {expected}): "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    print(
        f"server CPU: {server_cpu / creates * 1000:.1f} ms per create with its "
        f"{group.open} deliveries ({server_cpu / max(1, len(latencies)) * 1e6:.0f} us per "
        "delivery, the create itself included)"
    )


async def creates_per_second(database_url: str, workdir: Path, creates: int, rounds: int) -> None:
    from kupe.server.app import create_app
    from kupe.server.logging import configure_logging
    from kupe.server.settings import Settings

    settings = Settings(
        data_dir=workdir / "inproc",
        database_url=database_url,
        log_level="warning",
        rate_limit_rps=1_000_000,
        rate_limit_burst=1_000_000,
    )
    configure_logging(settings)
    app = create_app(settings, run_reconciler=False)
    runtime = app.state.runtime
    outbox = runtime.db.outbox
    results: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    async with app.router.lifespan_context(app):
        async with runtime.db.write() as session:
            _tenant, key = await runtime.services.tenants.create_tenant(
                session,
                name="bench",
                display_name="Bench",
                contact_email="bench@example.com",
                plan="enterprise",
            )
        headers = {"Authorization": f"Bearer {key.raw}"}
        transport = httpx.ASGITransport(app=app)
        semaphore = asyncio.Semaphore(16)
        async with httpx.AsyncClient(transport=transport, base_url="http://kupe.bench") as client:
            for round_ in range(rounds * 2):
                with_outbox = round_ % 2 == 0
                runtime.db.outbox = outbox if with_outbox else None
                names = [f"c{round_}-{i}" for i in range(creates)]

                async def create(name: str) -> None:
                    async with semaphore:
                        body = {"name": name, "displayName": name, "type": "shared"}
                        response = await client.post(
                            "/api/v1/tenants/bench/clusters", json=body, headers=headers
                        )
                        assert response.status_code == 201, response.text

                started, cpu_started = time.perf_counter(), time.process_time()
                await asyncio.gather(*(create(name) for name in names))
                results[with_outbox].append(creates / (time.perf_counter() - started))
                cpu[with_outbox].append((time.process_time() - cpu_started) / creates)
                # Same holdings for the next round: delete them (the reconciler is off).
                async with runtime.db.write() as session:
                    from sqlalchemy import text

                    await session.execute(text("UPDATE clusters SET removed_at = created_at"))
        runtime.db.outbox = outbox
    on, off = statistics.median(results[True]), statistics.median(results[False])
    print(
        f"creates/s (in-process, median of {rounds}): {on:.0f} with the outbox, {off:.0f} "
        f"without; ratio {on / off:.2f} ({(1 - on / off) * 100:+.1f} % slower)"
    )
    cpu_on, cpu_off = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(
        f"CPU per create (app and client, one process): {cpu_on * 1000:.2f} ms with the outbox, "
        f"{cpu_off * 1000:.2f} ms without ({(cpu_on / cpu_off - 1) * 100:+.1f} %)"
    )


@contextlib.contextmanager
def database(kind: str, workdir: Path, name: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'{name}.db'}"
        return
    with postgres_server() as handle:
        yield handle.create_database(f"b_{uuid.uuid4().hex[:12]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--creates", type=int, default=30, help="clusters created while watched")
    parser.add_argument("--bulk", type=int, default=300, help="creates per A/B round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kupe-bench-watch-") as tmp:
        workdir = Path(tmp)
        (workdir / "serve").mkdir()
        print(f"== {args.db}: {args.watchers} watchers on one `kupe serve`")
        with (
            database(args.db, workdir, "serve") as url,
            process_group(workdir / "serve", {**BENCH_ENV, "KUPE_DATABASE_URL": url}) as group,
        ):
            server = group.serve().wait_ready()
            asyncio.run(
                watch_scenario(server.url, group.api_key(), server.pid, args.watchers, args.creates)
            )
        print(f"== {args.db}: creates with and without the outbox")
        with database(args.db, workdir, "inproc") as url:
            asyncio.run(creates_per_second(url, workdir, args.bulk, args.rounds))


if __name__ == "__main__":
    main()
