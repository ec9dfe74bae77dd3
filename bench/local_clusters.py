"""Figures of the local provider with the real binaries (prints, asserts nothing).

    .venv/bin/python bench/local_clusters.py                      # defaults: 3 alone, 10 at once
    .venv/bin/python bench/local_clusters.py --memory-limit-mb 200 --concurrency 1

1. ensure -> READY of clusters created one after another (seconds each);
2. N clusters ensured at once until all are READY (wall time, and each one's);
3. RSS per cluster: the sum over its processes, and per component (mean over the N);
4. idle CPU per cluster over `--idle-seconds` once all are READY (% of one core).

Runs in a throwaway workdir; every cluster is deleted at the end, and anything left running from
that workdir is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from kupe.core.clock import SystemClock
from kupe.server.metrics import Metrics
from kupe.server.providers.base import ClusterSpec, InfraPhase
from kupe.server.providers.local import LocalSettings
from kupe.server.providers.local.processes import cluster_processes, kill_all
from kupe.server.providers.local.provider import LocalProvider
from kupe.server.providers.registry import ProviderContext

MIB = 2**20


def spec(version: str) -> ClusterSpec:
    return ClusterSpec(
        id=uuid.uuid4().hex,
        tenant="bench",
        name=f"b{uuid.uuid4().hex[:6]}",
        type="dedicated",
        version=version,
        cpu_millis=4_000,
        memory_bytes=16 * 2**30,
        storage_bytes=100 * 2**30,
    )


async def timed_ensure(provider: LocalProvider, wanted: ClusterSpec) -> float:
    began = time.monotonic()
    state = await provider.ensure(wanted)
    while state.phase is not InfraPhase.READY:
        await asyncio.sleep(0.2)
        observed = await provider.observe(wanted.id)
        assert observed is not None
        state = observed
    return time.monotonic() - began


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="kupe-bench-local-"))
    settings = LocalSettings(
        workdir=base / "work",
        create_concurrency=args.concurrency,
        memory_limit_mb=args.memory_limit_mb,
        max_clusters=args.clusters + args.sequential,
    )
    context = ProviderContext(
        clock=SystemClock(),
        metrics=Metrics(),
        data_dir=base,
        cluster_domain="bench.local",
        api_url="http://127.0.0.1:9",  # no Kupe here: bearer tokens are simply refused
    )
    provider = LocalProvider(settings, context)
    made: list[str] = []
    print(
        f"local provider bench: Kubernetes {args.version}, create_concurrency="
        f"{args.concurrency}, memory_limit_mb={args.memory_limit_mb}, workdir {base}"
    )
    try:
        alone = []
        for _ in range(args.sequential):
            wanted = spec(args.version)
            made.append(wanted.id)
            alone.append(await timed_ensure(provider, wanted))
        if alone:
            print(
                f"1. ensure -> READY, one at a time: {', '.join(f'{s:.1f}s' for s in alone)} "
                f"(median {statistics.median(alone):.1f}s)"
            )
        for cluster_id in made:
            await provider.delete(cluster_id)
        made.clear()

        batch = [spec(args.version) for _ in range(args.clusters)]
        made.extend(wanted.id for wanted in batch)
        began = time.monotonic()
        each = await asyncio.gather(*(timed_ensure(provider, wanted) for wanted in batch))
        wall = time.monotonic() - began
        print(
            f"2. {args.clusters} clusters at once: all READY after {wall:.1f}s "
            f"(each: min {min(each):.1f}s, median {statistics.median(each):.1f}s, "
            f"max {max(each):.1f}s)"
        )

        await asyncio.sleep(args.settle_seconds)  # let start-up allocations settle
        dirs = [provider.workdir.cluster_dir(wanted.id) for wanted in batch]
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
        print(
            f"3. RSS per cluster: median {statistics.median(totals) / MIB:.0f} MiB "
            f"(min {min(totals) / MIB:.0f}, max {max(totals) / MIB:.0f}); PSS (shared code "
            f"divided among the {args.clusters}): median "
            f"{statistics.median(shares_of_memory) / MIB:.0f} MiB; all {args.clusters}: "
            f"RSS {sum(totals) / MIB:.0f} MiB, PSS {sum(shares_of_memory) / MIB:.0f} MiB"
        )
        for name, values in sorted(per_component.items()):
            print(
                f"   {name:<24} RSS {statistics.mean(values) / MIB:5.0f} MiB   "
                f"PSS {statistics.mean(proportional[name]) / MIB:5.0f} MiB"
            )

        before = {d: sum(p.cpu_seconds for p in cluster_processes(d)) for d in dirs}
        began = time.monotonic()
        await asyncio.sleep(args.idle_seconds)
        elapsed = time.monotonic() - began
        shares = [
            (sum(p.cpu_seconds for p in cluster_processes(d)) - before[d]) / elapsed * 100
            for d in dirs
        ]
        print(
            f"4. idle CPU per cluster over {elapsed:.0f}s: median {statistics.median(shares):.1f}% "
            f"of one core (max {max(shares):.1f}%); all {args.clusters}: {sum(shares):.0f}%"
        )
    finally:
        began = time.monotonic()
        for cluster_id in made:
            await provider.delete(cluster_id)
        await provider.aclose()
        kill_all(base)
        print(f"deleted {len(made)} clusters in {time.monotonic() - began:.1f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="1.37")
    parser.add_argument("--sequential", type=int, default=3)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--memory-limit-mb", type=int, default=None)
    parser.add_argument("--settle-seconds", type=float, default=20)
    parser.add_argument("--idle-seconds", type=float, default=30)
    asyncio.run(main(parser.parse_args()))
