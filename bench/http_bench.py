"""HTTP benchmarks: GET one cluster vs a bare Starlette endpoint, conditional GET, list, the same
at 100,000 clusters, server RSS, and the reconciler's idle CPU. Prints figures; asserts nothing.

    .venv/bin/python bench/http_bench.py [--db sqlite|postgresql|both] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import postgres_server  # noqa: E402
from tests.support.server_process import (  # noqa: E402
    KupeProcess,
    free_port,
    process_group,
    wait_for,
)

from kupe.core.clock import SystemClock  # noqa: E402
from kupe.server.db.engine import Database  # noqa: E402
from kupe.server.db.models import Cluster, Tenant  # noqa: E402
from kupe.server.metrics import Metrics  # noqa: E402
from kupe.server.providers.pki import issue_cluster_pki  # noqa: E402
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings  # noqa: E402
from kupe.server.services.plan import PlanCatalogue  # noqa: E402
from kupe.server.services.tenant import TenantService  # noqa: E402

BENCH_TENANT = "bench"
TARGET = "c00042"
# Seeded rows get resourceVersions from here up; the server's own counter stays far below.
SEEDED_VERSIONS = 10**9


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float

    def __str__(self) -> str:
        return f"{self.rps:9.0f} req/s  p50 {self.p50_ms:6.2f} ms  p99 {self.p99_ms:6.2f} ms"


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is needed: apt-get install wrk")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk did not install")


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# On this 2-core machine the server gets core 0 and the load generator core 1, with one wrk
# thread: with two, wrk took the core the server needs (GET 1,332 req/s with -t2 against
# 6,708 with -t1, measured in the same hour).
SERVER_CPUS = {0}
LOAD_CPUS = {1}


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of process `pid` to `cpus` (where the machine has them)."""
    if len(os.sched_getaffinity(0)) < 2:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int = 32) -> Load:
    cmd = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if len(os.sched_getaffinity(0)) >= 2:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(LOAD_CPUS))), *cmd]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        sys.exit(f"unexpected statuses during the run:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return Load(rps, p50, p99)


def median(loads: list[Load]) -> Load:
    return Load(
        statistics.median(x.rps for x in loads),
        statistics.median(x.p50_ms for x in loads),
        statistics.median(x.p99_ms for x in loads),
    )


# The conditions of a settled Running cluster exactly as the controller writes them, so a resync
# that finds the infrastructure as recorded changes nothing.
_SETTLED = (
    ("Provisioned", "Provisioned", "Infrastructure is provisioned"),
    ("Ready", "Running", "The API server is serving"),
    ("UpToDate", "UpToDate", "Generation 1 is applied"),
)
CLUSTER_DOMAIN = "kupe.localhost"


def _cluster_row(tenant_id: str, name: str, ca: str, now: datetime, rng: random.Random) -> dict:  # type: ignore[type-arg]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "name": name,
        "display_name": name.upper(),
        "type": "shared",
        "version": "1.32",
        "cpu": "2",
        "memory": "4Gi",
        "storage": "20Gi",
        "cpu_millis": 2000,
        "memory_bytes": 4 * 2**30,
        "storage_bytes": 20 * 2**30,
        "alerts": None,
        "generation": 1,
        "resource_version": rng.randrange(SEEDED_VERSIONS, 2 * SEEDED_VERSIONS),
        "created_at": now,
        "phase": "Running",
        "observed_generation": 1,
        "kubernetes_version": "v1.32.5",
        "endpoint": f"https://{name}.{tenant_id[:8]}.{CLUSTER_DOMAIN}",
        "ca_certificate": ca,
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": stamp,
            }
            for t, reason, message in _SETTLED
        ],
        "metrics": {},
        # Settled clusters come due for their periodic resync spread over the resync window.
        "next_reconcile_at": now + timedelta(seconds=rng.uniform(0, 300)),
        "failure_count": 0,
    }


def seed_cloud(cloud: Path, rows: list[dict], tenant: str) -> None:  # type: ignore[type-arg]
    """Give seeded clusters their infrastructure in the simulated cloud (the provider's own
    SQLite file), ready and matching their spec, as if the provider had built them: a resync
    then observes them as they are instead of building them again."""
    SimulatedProvider(
        cloud,
        clock=SystemClock(),
        metrics=Metrics(),
        cluster_domain=CLUSTER_DOMAIN,
        timings=SimulatedTimings(),
    ).close()  # creates the cloud's schema
    conn = sqlite3.connect(cloud, timeout=30)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO infra (id, tenant, name, type, version, endpoint, ca_certificate, "
                "serving_certificate, cpu_millis, memory_bytes, storage_bytes, ready_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        r["id"],
                        tenant,
                        r["name"],
                        r["type"],
                        r["version"],
                        r["endpoint"],
                        r["ca_certificate"],
                        r["ca_certificate"],
                        r["cpu_millis"],
                        r["memory_bytes"],
                        r["storage_bytes"],
                        0.0,
                    )
                    for r in rows
                ],
            )
    finally:
        conn.close()


async def seed(
    url: str, cloud: Path, *, tenants: int, clusters_per_tenant: int, fresh: bool
) -> str | None:
    """Bulk-load tenants and Running clusters straight into the database (not via the API),
    and their infrastructure into the simulated cloud at `cloud`."""
    db = Database(url, pool_size=2)
    rng = random.Random(1)
    now = datetime.now(UTC)
    ca = issue_cluster_pki("bench", "bench.kupe.localhost", now).ca_certificate_pem
    key: str | None = None
    try:
        await db.upgrade()
        if fresh:
            service = TenantService(db, PlanCatalogue.built_in(), SystemClock())
            async with db.write() as session:
                tenant, issued = await service.create_tenant(
                    session,
                    name=BENCH_TENANT,
                    display_name="Bench",
                    contact_email="bench@example.com",
                    plan="enterprise",
                )
                rows = [_cluster_row(tenant.id, f"c{i:05d}", ca, now, rng) for i in range(100)]
                await session.execute(insert(Cluster), rows)
            seed_cloud(cloud, rows, BENCH_TENANT)
            key = issued.raw
        for t in range(tenants):
            async with db.write() as session:
                tenant_id = uuid.uuid4().hex
                tenant_name = f"t{t:04d}-{rng.randrange(10**6)}"
                await session.execute(
                    insert(Tenant),
                    [
                        {
                            "id": tenant_id,
                            "name": tenant_name,
                            "display_name": "Filler",
                            "contact_email": "filler@example.com",
                            "plan": "enterprise",
                            "enforce_metrics_limit": False,
                            "enforce_log_limit": False,
                            "phase": "Active",
                            "resource_version": rng.randrange(SEEDED_VERSIONS, 2 * SEEDED_VERSIONS),
                            "created_at": now,
                        }
                    ],
                )
                rows = [
                    _cluster_row(tenant_id, f"c{i:05d}", ca, now, rng)
                    for i in range(clusters_per_tenant)
                ]
                await session.execute(insert(Cluster), rows)
            seed_cloud(cloud, rows, tenant_name)
    finally:
        await db.dispose()
    return key


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def bare_server(body: bytes, etag: str, workdir: Path, kind: str = "starlette") -> Iterator[str]:
    body_file = workdir / "body.json"
    body_file.write_bytes(body)
    port = free_port()
    bare_app = str(ROOT / "bench" / "bare_app.py")
    process = subprocess.Popen(
        [sys.executable, bare_app, str(port), str(body_file), etag, kind],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        probe = f"{url}/api/v1/tenants/{BENCH_TENANT}/clusters/{TARGET}"
        wait_for("bare app", lambda: httpx.get(probe, timeout=2).status_code == 200)
        pin(process.pid, SERVER_CPUS)
        yield url
    finally:
        process.kill()
        process.wait()


def measure(
    base: str, key: str, seconds: int, rounds: int, baselines: dict[str, str]
) -> dict[str, Load]:
    auth = {"Authorization": f"Bearer {key}"}
    path = f"/api/v1/tenants/{BENCH_TENANT}/clusters/{TARGET}"
    one = base + path
    etag = httpx.get(one, headers=auth, timeout=10).headers["etag"]
    runs: dict[str, list[Load]] = {"get": [], "304": [], "list": []}
    for _ in range(rounds):  # alternate A/B so drift on a noisy machine hits both
        runs["get"].append(wrk(one, auth, seconds))
        for name, url in baselines.items():
            runs.setdefault(name, []).append(wrk(url + path, auth, seconds))
        runs["304"].append(wrk(one, {**auth, "If-None-Match": etag}, seconds))
        runs["list"].append(wrk(f"{base}/api/v1/tenants/{BENCH_TENANT}/clusters", auth, seconds))
    return {name: median(loads) for name, loads in runs.items() if loads}


def run(db_kind: str, url: str, args: argparse.Namespace, workdir: Path) -> None:
    print(f"\n== {db_kind} ==", flush=True)
    env = {"KUPE_DATABASE_URL": url, "KUPE_RESYNC_SECONDS": "300", "KUPE_LOG_LEVEL": "info"}
    with process_group(workdir / db_kind, env) as group:
        group.workdir.mkdir(parents=True, exist_ok=True)
        # The server's simulated cloud (KUPE_SIM_STATE_FILE) gets the seeded clusters too.
        key = asyncio.run(seed(url, group.cloud, tenants=0, clusters_per_tenant=0, fresh=True))
        assert key is not None
        server = group.serve().wait_ready()
        pin(server.pid, SERVER_CPUS)
        one = f"{server.url}/api/v1/tenants/{BENCH_TENANT}/clusters/{TARGET}"
        response = httpx.get(one, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        body, etag = response.content, response.headers["etag"]
        with (
            bare_server(body, etag, workdir, "starlette") as bare,
            bare_server(body, etag, workdir, "fastapi") as floor,
        ):
            baselines = {"bare": bare, "floor": floor}
            small = measure(server.url, key, args.seconds, args.rounds, baselines)
        small_rss = rss_mb(server.pid)
        server.stop()

        started = time.monotonic()
        asyncio.run(
            seed(
                url,
                group.cloud,
                tenants=args.tenants,
                clusters_per_tenant=args.per_tenant,
                fresh=False,
            )
        )
        seeded = args.tenants * args.per_tenant + 100
        print(f"seeded {seeded} clusters in {time.monotonic() - started:.1f} s", flush=True)
        server.start().wait_ready(timeout=300)
        pin(server.pid, SERVER_CPUS)
        big = measure(server.url, key, args.seconds, args.rounds, {})
        big_rss = rss_mb(server.pid)

        time.sleep(5)  # let the post-start burst settle, then watch an idle server
        reconciles, creates = _reconciles(server), server.provider_operations("create")
        before, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.idle_seconds)
        idle = (cpu_seconds(server.pid) - before) / (time.monotonic() - t0)
        idle_window = time.monotonic() - t0
        reconciles = _reconciles(server) - reconciles
        creates = server.provider_operations("create") - creates
        bumped = asyncio.run(_versions_moved(url))

    get, base, floor = small["get"], small["bare"], small["floor"]
    print(f"GET one cluster      {get}")
    print(f"bare Starlette       {base}")
    print(
        f"  ratio {get.rps / base.rps:.2f} (target >= 0.6), p99 {get.p99_ms:.1f} ms (target <= 20)"
    )
    print(f"FastAPI, no work     {floor}")
    print(
        f"  FastAPI floor / bare Starlette {floor.rps / base.rps:.2f}; "
        f"Kupe GET / FastAPI floor {get.rps / floor.rps:.2f}"
    )
    cond = small["304"]
    print(f"conditional GET 304  {cond}")
    print(f"  cost of a 304 / full GET {get.rps / cond.rps:.2f} (target <= 0.5)")
    print(f"list 100 clusters    {small['list']}")
    print(f"server RSS {small_rss:.0f} MB")
    print(f"-- at {seeded} clusters across {args.tenants + 1} tenants --")
    for name, label in (
        ("get", "GET one cluster"),
        ("304", "conditional GET"),
        ("list", "list 100"),
    ):
        ratio = small[name].rps / big[name].rps
        print(f"{label:20} {big[name]}  slowdown x{ratio:.2f} (target <= 1.2)")
    print(f"server RSS {big_rss:.0f} MB (target <= 300)")
    print(f"idle CPU {idle * 100:.1f} % of one core over {args.idle_seconds} s (target < 5 %)")
    print(
        f"  resyncs {reconciles / idle_window:.0f}/s (CPU per resync "
        f"{idle * idle_window / max(reconciles, 1) * 1e6:.0f} us), provider creates "
        f"{creates:.0f}, clusters whose resourceVersion a resync moved {bumped}"
    )


def _reconciles(server: KupeProcess) -> float:
    return server.metric("kupe_reconciler_reconciles_total")


async def _versions_moved(url: str) -> int:
    """Clusters the server rewrote since seeding (seeded versions start at SEEDED_VERSIONS)."""
    db = Database(url, pool_size=1)
    try:
        async with db.read() as session:
            stmt = select(func.count()).where(Cluster.resource_version < SEEDED_VERSIONS)
            return int(await session.scalar(stmt) or 0)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=999)
    parser.add_argument("--per-tenant", type=int, default=100)
    parser.add_argument("--idle-seconds", type=int, default=30)
    args = parser.parse_args()
    ensure_wrk()
    print(f"machine: {os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}")
    with tempfile.TemporaryDirectory(prefix="kupe-bench-") as tmp:
        workdir = Path(tmp)
        if args.db in ("sqlite", "both"):
            run("sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}", args, workdir)
        if args.db in ("postgresql", "both"):
            with postgres_server() as pg:
                run("postgresql", pg.create_database("kupe_bench"), args, workdir)


if __name__ == "__main__":
    main()
