"""Soak: a mixed workload (creates, polls, patches, deletes, lists, bad requests) against a real
`kupe serve` for a while, then every cluster must converge. Reports unexpected status codes,
p99 latency and server RSS per time window, and the RSS trend. Exit status 1 on any miss.

    .venv/bin/python bench/soak.py [--minutes 10] [--db sqlite|postgresql] [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import postgres_server  # noqa: E402
from tests.support.server_process import KupeProcess, process_group  # noqa: E402

TENANT = "default"
MAX_LIVE = 40  # clusters alive at once; the enterprise bootstrap tenant has no limits
RSS_GROWTH_LIMIT = 0.10


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    window_seconds: float = 30.0
    latencies: dict[int, list[float]] = field(default_factory=dict)
    rss: list[tuple[float, int]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def record(self, op: str, status: int, expected: set[int], seconds: float, detail: str) -> None:
        window = int((time.monotonic() - self.started) // self.window_seconds)
        self.latencies.setdefault(window, []).append(seconds)
        self.counts[op] += 1
        if status not in expected:
            self.counts["unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append(f"{op}: {status} not in {sorted(expected)}: {detail[:200]}")


@dataclass
class Fleet:
    live: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    names: Iterator[int] = field(default_factory=itertools.count)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Workload:
    def __init__(self, client: httpx.AsyncClient, stats: Stats, rng: random.Random) -> None:
        self.client = client
        self.stats = stats
        self.rng = rng
        self.fleet = Fleet()
        self.base = f"/api/v1/tenants/{TENANT}/clusters"

    async def _call(
        self, op: str, expected: Callable[[], set[int]], method: str, url: str, **kwargs: object
    ) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await self.client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.stats.record(op, 0, expected(), time.perf_counter() - began, repr(exc))
            return None
        self.stats.record(
            op, response.status_code, expected(), time.perf_counter() - began, response.text
        )
        return response

    def _pick(self) -> str | None:
        return self.rng.choice(sorted(self.fleet.live)) if self.fleet.live else None

    def _expect_alive(self, name: str, ok: int) -> Callable[[], set[int]]:
        # A cluster deleted by another worker while this request was in flight may answer
        # 404 (gone) or 409 (Terminating); anything else is a bug.
        return lambda: {ok} if name not in self.fleet.deleted else {ok, 404, 409}

    async def create(self) -> None:
        if len(self.fleet.live) >= MAX_LIVE:
            return await self.delete()
        name = f"s{next(self.fleet.names):05d}"
        body = {"name": name, "displayName": name, "type": "shared", "alerts": {"cpu": 80}}
        response = await self._call("create", lambda: {201}, "POST", self.base, json=body)
        if response is not None and response.status_code == 201:
            self.fleet.live.add(name)

    async def poll(self) -> None:
        name = self._pick()
        if name is not None:
            await self._call("poll", self._expect_alive(name, 200), "GET", f"{self.base}/{name}")

    async def patch(self) -> None:
        name = self._pick()
        if name is None:
            return
        body = self.rng.choice(
            [
                {"alerts": {"cpu": self.rng.randrange(50, 99)}},
                {"resources": {"cpu": self.rng.choice(["1", "2"])}},
                {"alerts": None},
            ]
        )
        await self._call(
            "patch", self._expect_alive(name, 200), "PATCH", f"{self.base}/{name}", json=body
        )

    async def delete(self) -> None:
        name = self._pick()
        if name is None:
            return
        self.fleet.live.discard(name)
        self.fleet.deleted.add(name)
        await self._call("delete", lambda: {204}, "DELETE", f"{self.base}/{name}")

    async def list(self) -> None:
        await self._call("list", lambda: {200}, "GET", self.base, params={"limit": 20})

    async def bad(self) -> None:
        kind = self.rng.randrange(6)
        if kind == 0:
            body = {"name": "Bad_Name", "displayName": "x", "type": "shared"}
            await self._call("bad", lambda: {400}, "POST", self.base, json=body)
        elif kind == 1:
            body = {"name": "ok-name", "displayName": "x", "type": "shared", "extra": 1}
            await self._call("bad", lambda: {400}, "POST", self.base, json=body)
        elif kind == 2:
            headers = {"Content-Type": "text/plain"}
            await self._call("bad", lambda: {415}, "POST", self.base, content=b"x", headers=headers)
        elif kind == 3:
            headers = {"Authorization": "Bearer kupe_nope1234_" + "x" * 43}
            await self._call("bad", lambda: {401}, "GET", self.base, headers=headers)
        elif kind == 4:
            await self._call("bad", lambda: {404}, "GET", f"{self.base}/does-not-exist")
        else:
            name = self._pick()
            if name is not None:
                await self._call(
                    "bad",
                    self._expect_alive(name, 412),
                    "PATCH",
                    f"{self.base}/{name}",
                    json={"alerts": {}},
                    headers={"If-Match": '"1"'},
                )

    async def worker(self, until: float) -> None:
        actions: list[tuple[Callable[[], Awaitable[None]], int]] = [
            (self.create, 15),
            (self.poll, 40),
            (self.patch, 15),
            (self.delete, 8),
            (self.list, 10),
            (self.bad, 12),
        ]
        ops, weights = zip(*actions, strict=True)
        while time.monotonic() < until:
            await self.rng.choices(ops, weights)[0]()


async def converge(client: httpx.AsyncClient, fleet: Fleet, within: float) -> tuple[bool, str]:
    """Every live cluster Running with its spec applied; every deleted one gone."""
    base = f"/api/v1/tenants/{TENANT}/clusters"
    deadline = time.monotonic() + within
    problems: list[str] = []
    while time.monotonic() < deadline:
        items = (await client.get(base)).json()["items"]
        by_name = {item["name"]: item for item in items}
        problems = []
        for name in sorted(fleet.live):
            item = by_name.get(name)
            if item is None:
                problems.append(f"{name} missing")
            elif item["status"]["phase"] != "Running" or (
                item["status"]["observedGeneration"] != item["generation"]
            ):
                problems.append(f"{name} {item['status']['phase']}")
        problems += [f"{name} not gone" for name in sorted(fleet.deleted) if name in by_name]
        if not problems:
            return True, f"{len(fleet.live)} running, {len(fleet.deleted)} deleted and gone"
        await asyncio.sleep(1)
    return False, "; ".join(problems[:10])


async def soak(server: KupeProcess, key: str, seconds: float, workers: int) -> int:
    stats = Stats(window_seconds=max(10.0, seconds / 8))
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=workers)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=30, limits=limits
    ) as client:
        load = Workload(client, stats, random.Random(2026))
        until = time.monotonic() + seconds

        async def sample_rss() -> None:
            while time.monotonic() < until:
                stats.rss.append((time.monotonic() - stats.started, rss_bytes(server.pid)))
                await asyncio.sleep(2)

        await asyncio.gather(sample_rss(), *(load.worker(until) for _ in range(workers)))
        converged, how = await converge(client, load.fleet, within=120)

    print(f"requests: {sum(v for k, v in stats.counts.items() if k != 'unexpected')}")
    print("by operation: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.counts.items())))
    print(f"unexpected status codes: {stats.counts['unexpected']}")
    for line in stats.unexpected:
        print(f"  {line}")
    print(f"\n{'window':>12} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'RSS MiB':>8}")
    for window, values in sorted(stats.latencies.items()):
        lo, hi = window * stats.window_seconds, (window + 1) * stats.window_seconds
        rss = [r for t, r in stats.rss if lo <= t < hi] or [0]
        q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
        print(
            f"{lo:5.0f}-{hi:4.0f}s {len(values):9d} {q[49] * 1000:8.1f} {q[98] * 1000:8.1f} "
            f"{max(rss) / 2**20:8.1f}"
        )
    # Trend: after a warm-up (the first fifth), compare the first and last quarters.
    settled = [r for t, r in stats.rss if t >= seconds / 5]
    quarter = max(1, len(settled) // 4)
    first, last = statistics.mean(settled[:quarter]), statistics.mean(settled[-quarter:])
    growth = (last - first) / first
    print(
        f"\nRSS after warm-up: {first / 2**20:.1f} MiB -> {last / 2**20:.1f} MiB "
        f"({growth:+.1%}; limit +{RSS_GROWTH_LIMIT:.0%})"
    )
    print(f"convergence: {'ok' if converged else 'FAILED'} ({how})")
    ok = stats.counts["unexpected"] == 0 and growth <= RSS_GROWTH_LIMIT and converged
    print("SOAK " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kupe-soak-")))
        # The bad-credential requests are part of the mix, so the per-IP auth-failure backoff
        # (tested elsewhere) is opened wide; request rate limits are already off in FAST_ENV.
        env = {"KUPE_LOG_LEVEL": "warning", "KUPE_AUTH_FAILURE_ALLOWANCE": "1000000"}
        if args.db == "postgresql":
            postgres = stack.enter_context(postgres_server())
            env["KUPE_DATABASE_URL"] = postgres.create_database("kupe_soak")
        group = stack.enter_context(process_group(workdir, env))
        server = group.serve().wait_ready()
        key = group.api_key()
        print(f"soak: {args.minutes:g} min, {args.db}, {args.workers} workers, pid {server.pid}")
        return asyncio.run(soak(server, key, args.minutes * 60, args.workers))


if __name__ == "__main__":
    sys.exit(main())
