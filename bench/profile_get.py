"""Profile one request shape in-process (no network): seeds the bench tenant, then drives the ASGI
app serially through httpx and prints the mean cost per request (and a pyinstrument profile with
--profile).

    .venv/bin/python bench/profile_get.py [--what get|304|list] [--requests 2000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from http_bench import BENCH_TENANT, TARGET, seed  # noqa: E402

from kupe.server.app import create_app  # noqa: E402
from kupe.server.settings import Settings  # noqa: E402


async def drive(url: str, what: str, requests: int, profile: bool, concurrency: int) -> None:
    key = await seed(
        url,
        Path(url.rsplit("///", 1)[1]).parent / "cloud.db",
        tenants=0,
        clusters_per_tenant=0,
        fresh=True,
    )
    settings = Settings(
        database_url=url, rate_limit_rps=1e6, rate_limit_burst=10**6, log_level="info"
    )
    app = create_app(settings, run_reconciler=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            auth = {"Authorization": f"Bearer {key}"}
            one = f"/api/v1/tenants/{BENCH_TENANT}/clusters/{TARGET}"
            etag = (await client.get(one, headers=auth)).headers["etag"]
            path, headers = {
                "get": (one, auth),
                "304": (one, {**auth, "If-None-Match": etag}),
                "list": (f"/api/v1/tenants/{BENCH_TENANT}/clusters", auth),
            }[what]
            for _ in range(50):
                await client.get(path, headers=headers)
            profiler = None
            if profile:
                from pyinstrument import Profiler

                profiler = Profiler(async_mode="disabled", interval=0.0002)
                profiler.start()
            started, cpu = time.perf_counter(), time.process_time()

            async def client_loop(count: int) -> None:
                for _ in range(count):
                    response = await client.get(path, headers=headers)
                    assert response.status_code in (200, 304), response.text

            await asyncio.gather(
                *(client_loop(requests // concurrency) for _ in range(concurrency))
            )
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
            if profiler is not None:
                profiler.stop()
                # PROFILE_ALL=1 shows library frames too (FastAPI, Starlette, SQLAlchemy).
                show_all = bool(os.environ.get("PROFILE_ALL"))
                print(profiler.output_text(unicode=False, color=False, show_all=show_all))
    print(
        f"{what}: {elapsed / requests * 1e6:.0f} us wall, {cpu / requests * 1e6:.0f} us CPU "
        f"per request over {requests}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--what", choices=["get", "304", "list"], default="get")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1, help="Requests in flight.")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval, seconds.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kupe-profile-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        if args.switch_interval:
            sys.setswitchinterval(args.switch_interval)
        asyncio.run(drive(url, args.what, args.requests, args.profile, args.concurrency))


if __name__ == "__main__":
    main()
