"""Billing across real `kupe serve` processes on one PostgreSQL: a month's invoices are billed
exactly once with two replicas racing for them and one killed with SIGKILL in the middle; the
credits each bill spends are spent once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from kupe.core.clock import SystemClock
from kupe.server.admin import Admin
from kupe.server.billing.rates import Month
from kupe.server.db.engine import Database
from kupe.server.db.models import Invoice, PlanPeriod
from kupe.server.db.repositories.billing import draft_values, insert_draft
from kupe.server.settings import Settings
from tests.conftest import TEMPLATE_DB
from tests.support.postgres import PostgresHandle
from tests.support.server_process import process_group, wait_for

pytestmark = pytest.mark.slow
TENANTS = 120
FAR = datetime(9000, 1, 1, tzinfo=UTC)


@pytest.fixture
def postgres_url(postgres: PostgresHandle) -> Iterator[str]:
    name = f"b_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name, template=TEMPLATE_DB)
    postgres.drop_database(name)


async def _prepare(url: str, last: Month) -> None:
    """Tenants on pro since the middle of last month, each with a 30.00 credit and last
    month's draft, not yet due."""
    settings = Settings(database_url=url)
    async with Admin.open(settings) as admin:
        for index in range(TENANTS):
            await admin.create_tenant(f"t{index:03d}", f"T{index}", f"o{index}@example.com", "pro")
            await admin.grant_credit(f"t{index:03d}", "30.00", "welcome")
    db = Database(url, pool_size=1)
    try:
        now = SystemClock().now()
        async with db.write() as session:
            middle = last.start + (last.end - last.start) / 2
            await session.execute(sa.update(PlanPeriod).values(started_at=middle))
            ids = (await session.scalars(sa.text("SELECT id FROM tenants"))).all()
            for tenant_id in ids:
                values = draft_values(
                    tenant_id,
                    last.name,
                    last.start,
                    last.end,
                    currency="GBP",
                    resource_version=await db.next_resource_version(session),
                    now=now,
                )
                values["next_reconcile_at"] = FAR
                assert await insert_draft(session, values)
    finally:
        await db.dispose()


async def _release(url: str, last: Month) -> None:
    db = Database(url, pool_size=1)
    try:
        async with db.write() as session:
            await session.execute(
                sa.update(Invoice)
                .where(Invoice.name == last.name)
                .values(next_reconcile_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        await db.dispose()


def _invoices(url: str) -> list[tuple[str, ...]]:
    async def read() -> list[tuple[str, ...]]:
        db = Database(url, pool_size=1)
        try:
            async with db.read() as session:
                rows = await session.execute(
                    sa.text(
                        "SELECT t.name, i.name, i.phase, i.subtotal, i.credits_applied, i.total "
                        "FROM invoices i JOIN tenants t ON t.id = i.tenant_id"
                    )
                )
                return [tuple(str(v) for v in row) for row in rows.all()]
        finally:
            await db.dispose()

    return asyncio.run(read())


def _billed_lines(logs: list[Path]) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            if '"invoice.billed"' not in line:
                continue
            entry = json.loads(line)
            seen[(entry["tenant"], entry["invoice"])] += 1
    return seen


def test_two_replicas_one_killed_bill_each_invoice_once(tmp_path: Path, postgres_url: str) -> None:
    now = datetime.now(UTC)
    this = Month.of(now)
    last = Month.of(this.start - timedelta(days=1))
    asyncio.run(_prepare(postgres_url, last))
    with process_group(tmp_path, {"KUPE_DATABASE_URL": postgres_url}) as group:
        first, second = group.serve("first"), group.serve("second")
        first.wait_ready()
        second.wait_ready()
        asyncio.run(_release(postgres_url, last))

        def billed() -> int:
            return sum(
                1 for row in _invoices(postgres_url) if row[1] == last.name and row[2] == "Billed"
            )

        wait_for("the first bills", lambda: billed() > 0 or None, timeout=60, every=0.01)
        first.kill()  # SIGKILL, mid-way through the batch
        wait_for("every invoice billed", lambda: billed() == TENANTS or None, timeout=120)
        first.restart().wait_ready()

        rows = _invoices(postgres_url)
        fee = "24.50"  # half a month of pro
        for tenant, name, phase, subtotal, applied, total in rows:
            if name == last.name:
                assert (phase, subtotal, applied, total) == ("Billed", fee, fee, "0.00"), tenant
        # One invoice per tenant and month: the next month's draft exists once.
        assert Counter((row[0], row[1]) for row in rows) == Counter(
            {(f"t{i:03d}", month): 1 for i in range(TENANTS) for month in (last.name, this.name)}
        )
        # Billed once: no bill was logged twice, by one process or both.
        lines = _billed_lines([tmp_path / "first.log", tmp_path / "second.log"])
        assert set(lines.values()) <= {1}, lines.most_common(3)
        assert len(lines) >= TENANTS - 64  # a killed batch may have committed unlogged
