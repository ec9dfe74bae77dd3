"""Finalising a month's invoices for many tenants (prints, asserts nothing).

    .venv/bin/python bench/billing.py                       # 10,000 tenants on SQLite
    .venv/bin/python bench/billing.py --tenants 2000 --database-url postgresql+asyncpg://...

Seeds, straight into the database, N tenants on the pro plan since mid-month, each with two
clusters metered over the month (one resized half-way), a credit and last month's draft
invoice; then moves a fake clock past the month's end and times the reconciler billing every
draft (each: the statement from the ledger under the tenant's lock, credits, the next month's
draft, in group-committed batches). Target: under a minute for 10,000 on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from kupe.core.clock import FakeClock
from kupe.core.phases import ClusterPhase
from kupe.server.billing.rates import Month
from kupe.server.db.models import Cluster, Credit, Invoice, PlanPeriod, Tenant, UsageInterval
from kupe.server.db.repositories.billing import draft_values
from kupe.server.runtime import Runtime
from kupe.server.settings import Settings

MONTH = Month(2026, 3)
FAR = datetime(9000, 1, 1, tzinfo=UTC)
GIB = 1 << 30


def _cluster(tenant_id: str, name: str, at: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "name": name,
        "display_name": name,
        "type": "shared",
        "version": "1.32",
        "allocated_cpu": "2",
        "allocated_memory": "4Gi",
        "allocated_storage": "20Gi",
        "cpu_millis": 2000,
        "memory_bytes": 4 * GIB,
        "storage_bytes": 20 * GIB,
        "high_availability": False,
        "generation": 1,
        "observed_generation": 1,
        "resource_version": 1,
        "created_at": at,
        "phase": ClusterPhase.RUNNING,
        "conditions": [],
        "metrics": {},
        "next_reconcile_at": FAR,
        "failure_count": 0,
        "ha_replicas_ready": 1,
        "ha_replicas_desired": 1,
    }


async def seed(runtime: Runtime, tenants: int) -> None:
    start, middle = MONTH.start, MONTH.start + timedelta(days=15)
    for first in range(0, tenants, 1000):
        rows: dict[Any, list[dict[str, Any]]] = {
            Tenant: [],
            Cluster: [],
            UsageInterval: [],
            PlanPeriod: [],
            Credit: [],
            Invoice: [],
        }
        for index in range(first, min(first + 1000, tenants)):
            tid = uuid.uuid4().hex
            rows[Tenant].append(
                {
                    "id": tid,
                    "name": f"t{index:05d}",
                    "display_name": f"T{index}",
                    "contact_email": f"o{index}@example.com",
                    "plan": "pro",
                    "enforce_metrics_limit": False,
                    "enforce_log_limit": False,
                    "phase": "Active",
                    "resource_version": 1,
                    "created_at": start,
                    "failure_count": 0,
                }
            )
            for name in ("web", "db"):
                cluster = _cluster(tid, name, start)
                rows[Cluster].append(cluster)
                common = {"tenant_id": tid, "cluster_id": cluster["id"], "storage_bytes": 20 * GIB}
                rows[UsageInterval].append(
                    {**common, "cpu_millis": 1000, "memory_bytes": 2 * GIB}
                    | {"started_at": start, "ended_at": middle}
                )
                rows[UsageInterval].append(
                    {**common, "cpu_millis": 2000, "memory_bytes": 4 * GIB}
                    | {"started_at": middle, "ended_at": None}
                )
            rows[PlanPeriod].append(
                {"tenant_id": tid, "plan": "pro", "platform_fee": "49.00", "started_at": middle}
            )
            rows[Credit].append(
                {
                    "id": uuid.uuid4().hex,
                    "tenant_id": tid,
                    "amount": "10.00",
                    "reason": "bench",
                    "granted_at": start,
                }
            )
            rows[Invoice].append(
                draft_values(
                    tid,
                    MONTH.name,
                    MONTH.start,
                    MONTH.end,
                    currency="GBP",
                    resource_version=1,
                    now=start,
                )
                | {"next_reconcile_at": MONTH.end}
            )
        async with runtime.db.write() as session:
            for model, values in rows.items():
                await session.execute(insert(model), values)


async def main(tenants: int, database_url: str | None, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=database_url,
            reconcile_workers=workers,
            log_level="warning",
            log_format="json",
        )
        clock = FakeClock(MONTH.start)
        runtime = Runtime(settings, clock=clock, run_reconciler=False)
        await runtime.start()
        try:
            began = time.monotonic()
            await seed(runtime, tenants)
            print(f"seeded {tenants} tenants in {time.monotonic() - began:.1f} s")
            # The baseline, in the same run: one trivial statement in a write transaction.
            async with runtime.db.write() as session:
                probe = time.monotonic()
                for _ in range(500):
                    await session.execute(select(1))
                statement_ms = (time.monotonic() - probe) / 500 * 1000
            print(f"baseline: {statement_ms:.2f} ms per trivial statement")
            clock.advance((MONTH.end - MONTH.start).total_seconds() + 120)
            began = time.monotonic()
            await runtime.reconciler.drain()
            elapsed = time.monotonic() - began
            async with runtime.db.read() as session:
                billed = await session.scalar(select(func.count()).where(Invoice.phase == "Billed"))
                drafts = await session.scalar(
                    select(func.count()).where(Invoice.name == MONTH.next().name)
                )
            print(
                f"billed {billed} invoices (and created {drafts} next-month drafts) in "
                f"{elapsed:.1f} s: {billed / elapsed:.0f} a second "
                f"[{runtime.db.dialect}, {workers} workers]"
            )
        finally:
            await runtime.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    parser.add_argument(
        "--postgres", action="store_true", help="a throwaway embedded PostgreSQL (as the tests)"
    )
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.support.postgres import postgres_server

        with postgres_server() as server:
            url = server.create_database(f"bench_{uuid.uuid4().hex[:8]}")
            asyncio.run(main(args.tenants, url, args.workers))
    else:
        asyncio.run(main(args.tenants, args.database_url, args.workers))
