"""Throughput of the whole platform: create N clusters concurrently through the HTTP API of real
`kupe serve` processes and measure until all are Running (simulated provider, zero delays).

    .venv/bin/python bench/run.py                      # SQLite and PostgreSQL, 1 and 2 replicas
    .venv/bin/python bench/run.py --db postgresql --replicas 2 --clusters 1000 --tenants 8

PostgreSQL is $KUPE_TEST_POSTGRES_URL when set, else a throwaway embedded server (as in the
tests). Each scenario gets a fresh database, data dir and simulated cloud. Reported: creates/s
(1000 POSTs answered 201), clusters/s (from the first POST until the last cluster is Running) and
the Kupe processes' CPU per cluster, plus a check that the simulated cloud created every cluster
exactly once. Figures and method: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the process and PostgreSQL helpers live with the tests

from tests.support.postgres import PostgresHandle, postgres_server  # noqa: E402
from tests.support.server_process import (  # noqa: E402
    KUPE,
    ProcessGroup,
    clean_environ,
    process_group,
    wait_for,
)

BENCH_ENV = {
    "KUPE_SIM_PROVISION_SECONDS": "0",
    "KUPE_SIM_UPGRADE_SECONDS": "0",
    "KUPE_SIM_DELETE_SECONDS": "0",
    "KUPE_LOG_LEVEL": "warning",
    "KUPE_RATE_LIMIT_RPS": "1000000",
    "KUPE_RATE_LIMIT_BURST": "1000000",
    "KUPE_LEASE_SECONDS": "30",
    # A provider that answers at once makes the reconciler's batch size (and so the number of
    # write transactions it needs) the limit on SQLite; real providers rarely need this many.
    "KUPE_RECONCILE_WORKERS": "128",
}


@dataclass
class Result:
    database: str
    replicas: int
    clusters: int
    tenants: int
    concurrency: int
    create_seconds: float
    running_seconds: float
    server_cpu_seconds: float

    @property
    def creates_per_second(self) -> float:
        return self.clusters / self.create_seconds

    @property
    def clusters_per_second(self) -> float:
        return self.clusters / self.running_seconds

    def line(self) -> str:
        return (
            f"{self.database:<10} replicas={self.replicas} clusters={self.clusters} "
            f"tenants={self.tenants} concurrency={self.concurrency}  "
            f"creates/s={self.creates_per_second:7.1f}  "
            f"clusters/s to Running={self.clusters_per_second:7.1f}  "
            f"(all 201 after {self.create_seconds:.2f}s, all Running after "
            f"{self.running_seconds:.2f}s; Kupe processes used "
            f"{self.server_cpu_seconds * 1000 / self.clusters:.1f} ms CPU per cluster)"
        )


async def create_all(
    urls: list[str], tenants: list[tuple[str, str]], names: list[str], concurrency: int
) -> None:
    """POST every cluster, `concurrency` at a time, round-robin over replicas and tenants."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=120) for url in urls]
    gate = asyncio.Semaphore(concurrency)

    async def create(i: int, name: str) -> None:
        body = {"name": name, "displayName": name, "type": "shared"}
        tenant, key = tenants[i % len(tenants)]
        async with gate:
            response = await clients[i % len(clients)].post(
                f"/api/v1/tenants/{tenant}/clusters",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
        if response.status_code != 201:
            raise RuntimeError(f"create {name}: {response.status_code} {response.text}")

    try:
        await asyncio.gather(*(create(i, name) for i, name in enumerate(names)))
    finally:
        for client in clients:
            await client.aclose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def running_total(group: ProcessGroup) -> int:
    """Clusters that reached Running, summed over the replicas' metrics (cheap to poll)."""
    return sum(
        int(p.metric("kupe_cluster_phase_transitions_total", to_phase="Running"))
        for p in group.processes
    )


def make_tenants(url: str, count: int, bootstrap_key: str) -> list[tuple[str, str]]:
    """`default` (bootstrapped) plus count-1 more, made with `kupe admin create-tenant`."""
    tenants = [("default", bootstrap_key)]
    for i in range(1, count):
        name = f"tenant-{i:02d}"
        made = subprocess.run(
            [*KUPE, "admin", "create-tenant", name, "--display-name", name,
             "--contact-email", f"ops@{name}.example.com", "--plan", "enterprise"],
            env=clean_environ({"KUPE_DATABASE_URL": url}),
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        tenants.append((name, json.loads(made.stdout)["apiKey"]["key"]))
    return tenants


def scenario(
    workdir: Path,
    database: str,
    url: str,
    replicas: int,
    clusters: int,
    tenant_count: int,
    concurrency: int,
) -> Result:
    with process_group(workdir, {**BENCH_ENV, "KUPE_DATABASE_URL": url}) as group:
        first = group.serve("replica-1").wait_ready()
        key = group.api_key()
        for i in range(2, replicas + 1):
            group.serve(f"replica-{i}").wait_ready()
        tenants = make_tenants(url, tenant_count, key)
        urls = [p.url for p in group.processes]
        names = [f"b-{i:05d}" for i in range(clusters)]

        cpu_before = sum(cpu_seconds(p.pid) for p in group.processes)
        started = time.perf_counter()
        asyncio.run(create_all(urls, tenants, names, concurrency))
        created = time.perf_counter()
        wait_for(
            "every cluster Running",
            lambda: running_total(group) >= clusters,
            timeout=600,
            every=0.2,
        )
        running = time.perf_counter()
        cpu = sum(cpu_seconds(p.pid) for p in group.processes) - cpu_before

        phases: Counter[str] = Counter()
        for tenant, tenant_key in tenants:
            items = httpx.get(
                f"{first.url}/api/v1/tenants/{tenant}/clusters",
                headers={"Authorization": f"Bearer {tenant_key}"},
                timeout=60,
            ).json()["items"]
            phases.update(item["status"]["phase"] for item in items)
        assert phases == {"Running": clusters}, phases
        creates = Counter(e.cluster_id for e in group.ledger() if e.operation == "create")
        assert len(creates) == clusters, len(creates)
        assert set(creates.values()) == {1}, "a cluster was created twice"
        return Result(
            database,
            replicas,
            clusters,
            tenant_count,
            concurrency,
            created - started,
            running - started,
            cpu,
        )


@contextlib.contextmanager
def databases(kinds: list[str], workdir: Path) -> Iterator[dict[str, PostgresHandle | None]]:
    if "postgresql" not in kinds:
        yield {"sqlite": None}
        return
    with postgres_server() as handle:
        yield {kind: (handle if kind == "postgresql" else None) for kind in kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--replicas", choices=["1", "2", "all"], default="all")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument(
        "--tenants",
        type=int,
        nargs="+",
        default=[1, 8],
        help="spread the clusters over this many tenants (each count is a scenario)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "all" else [args.db]
    replica_counts = [1, 2] if args.replicas == "all" else [int(args.replicas)]

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="kupe-bench-") as tmp:
        workdir = Path(tmp)
        with databases(kinds, workdir) as handles:
            for kind, replicas, tenants in (
                (k, r, t) for k in kinds for r in replica_counts for t in args.tenants
            ):
                run_dir = workdir / f"{kind}-{replicas}-{tenants}"
                run_dir.mkdir()
                handle = handles.get(kind)
                if handle is None:
                    url = f"sqlite+aiosqlite:///{run_dir / 'kupe.db'}"
                else:
                    url = handle.create_database(f"bench_{uuid.uuid4().hex[:12]}")
                result = scenario(
                    run_dir, kind, url, replicas, args.clusters, tenants, args.concurrency
                )
                print(result.line(), flush=True)
                results.append(result)
    if args.json:
        rows = [
            {
                **asdict(r),
                "creates_per_second": round(r.creates_per_second, 1),
                "clusters_per_second": round(r.clusters_per_second, 1),
            }
            for r in results
        ]
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
