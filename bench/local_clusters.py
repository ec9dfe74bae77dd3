"""Figures of real clusters through Kupe's API: a real `kupe serve` with KUPE_PROVIDER=local and
the real binaries (prints, asserts nothing).

    .venv/bin/python bench/local_clusters.py                      # defaults: 3 alone, 10 at once
    .venv/bin/python bench/local_clusters.py --memory-limit-mb 200 --concurrency 1

1. POST -> Running of clusters created one after another (seconds each; target <= 10 s);
2. N clusters POSTed at once until all are Running (wall time; target <= 60 s on 2 cores);
3. RSS per cluster: the sum over its processes, and per component (mean over the N);
4. idle CPU per cluster over `--idle-seconds` once all are Running (% of one core).

Runs in a throwaway data dir; every cluster is deleted at the end, and anything left running
from it is killed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the process helpers live with the tests

from tests.support.server_process import process_group  # noqa: E402

from kupe.server.providers.local.processes import cluster_processes, kill_all  # noqa: E402

MIB = 2**20
BODY = {"type": "shared", "resources": {"cpu": "4", "memory": "16Gi", "storage": "100Gi"}}


def create_and_wait(http: httpx.Client, version: str, within: float = 600) -> tuple[str, float]:
    """POST one cluster and poll it until Running: its name and the seconds it took."""
    name = f"b{uuid.uuid4().hex[:6]}"
    began = time.monotonic()
    body = {**BODY, "name": name, "displayName": name, "version": version}
    created = http.post("/clusters", json=body)
    assert created.status_code == 201, created.text
    while time.monotonic() - began < within:
        if http.get(f"/clusters/{name}").json()["status"]["phase"] == "Running":
            return name, time.monotonic() - began
        time.sleep(0.2)
    raise SystemExit(f"{name} was not Running within {within}s")


def delete_all(http: httpx.Client, names: list[str]) -> None:
    for name in names:
        http.delete(f"/clusters/{name}")
    deadline = time.monotonic() + 300
    while names and time.monotonic() < deadline:
        names[:] = [n for n in names if http.get(f"/clusters/{n}").status_code != 404]
        time.sleep(0.5)


def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="kupe-bench-local-"))
    env = {
        "KUPE_PROVIDER": "local",
        "KUPE_LOG_LEVEL": "warning",
        "KUPE_RECONCILE_POLL_SECONDS": "0.2",
        "KUPE_LOCAL_CREATE_CONCURRENCY": str(args.concurrency),
        "KUPE_LOCAL_MAX_CLUSTERS": str(args.clusters + args.sequential),
    }
    if args.memory_limit_mb:
        env["KUPE_LOCAL_MEMORY_LIMIT_MB"] = str(args.memory_limit_mb)
    print(
        f"local clusters through the API: Kubernetes {args.version}, create concurrency "
        f"{args.concurrency}, memory limit {args.memory_limit_mb or 'none'} MB, data dir {base}"
    )
    made: list[str] = []
    with process_group(base, env) as group:
        server = group.serve().wait_ready(timeout=120)
        key = group.api_key()
        http = httpx.Client(
            base_url=f"{server.url}/api/v1/tenants/default",
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        workdir = group.data_dir / "local" / "clusters"
        try:
            alone = []
            for _ in range(args.sequential):
                name, seconds = create_and_wait(http, args.version)
                made.append(name)
                alone.append(seconds)
            if alone:
                print(
                    f"1. POST -> Running, one at a time: "
                    f"{', '.join(f'{s:.1f}s' for s in alone)} "
                    f"(median {statistics.median(alone):.1f}s)"
                )
            delete_all(http, made)

            began = time.monotonic()
            with ThreadPoolExecutor(args.clusters) as pool:
                done = list(
                    pool.map(lambda _: create_and_wait(http, args.version), range(args.clusters))
                )
            wall = time.monotonic() - began
            made.extend(name for name, _ in done)
            each = [seconds for _, seconds in done]
            print(
                f"2. {args.clusters} clusters POSTed at once: all Running after {wall:.1f}s "
                f"(each: min {min(each):.1f}s, median {statistics.median(each):.1f}s, "
                f"max {max(each):.1f}s)"
            )
            time.sleep(args.settle_seconds)  # let start-up allocations settle
            report_memory_and_cpu(sorted(workdir.iterdir()), args)
        finally:
            began, count = time.monotonic(), len(made)
            delete_all(http, made)
            print(f"deleted {count} clusters in {time.monotonic() - began:.1f}s")
            http.close()
            server.stop()
            kill_all(base)


def report_memory_and_cpu(dirs: list[Path], args: argparse.Namespace) -> None:
    per_component: dict[str, list[int]] = defaultdict(list)
    proportional: dict[str, list[int]] = defaultdict(list)
    totals, shares_of_memory = [], []
    for directory in dirs:
        processes = cluster_processes(directory)
        totals.append(sum(p.rss_bytes for p in processes))
        shares_of_memory.append(sum(p.proportional_bytes() for p in processes))
        for process in processes:
            per_component[process.name].append(process.rss_bytes)
            proportional[process.name].append(process.proportional_bytes())
    count = len(dirs)
    print(
        f"3. RSS per cluster: median {statistics.median(totals) / MIB:.0f} MiB "
        f"(min {min(totals) / MIB:.0f}, max {max(totals) / MIB:.0f}); PSS (shared code "
        f"divided among the {count}): median {statistics.median(shares_of_memory) / MIB:.0f} "
        f"MiB; all {count}: RSS {sum(totals) / MIB:.0f} MiB, PSS "
        f"{sum(shares_of_memory) / MIB:.0f} MiB"
    )
    for name, values in sorted(per_component.items()):
        print(
            f"   {name:<24} RSS {statistics.mean(values) / MIB:5.0f} MiB   "
            f"PSS {statistics.mean(proportional[name]) / MIB:5.0f} MiB"
        )
    before = {d: sum(p.cpu_seconds for p in cluster_processes(d)) for d in dirs}
    began = time.monotonic()
    time.sleep(args.idle_seconds)
    elapsed = time.monotonic() - began
    shares = [
        (sum(p.cpu_seconds for p in cluster_processes(d)) - before[d]) / elapsed * 100 for d in dirs
    ]
    print(
        f"4. idle CPU per cluster over {elapsed:.0f}s: median {statistics.median(shares):.1f}% "
        f"of one core (max {max(shares):.1f}%); all {count}: {sum(shares):.0f}%"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.37")
    parser.add_argument("--sequential", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--memory-limit-mb", type=int, default=None)
    parser.add_argument("--settle-seconds", type=float, default=20)
    parser.add_argument("--idle-seconds", type=float, default=30)
    main(parser.parse_args())
