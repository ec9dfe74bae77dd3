"""Property: the sum of a month's daily estimates equals its final invoice. Hypothesis draws a
month of cluster creates, resizes, deletes and plan changes; they go through the API and the
reconciler (a fake clock moves from event to event, one month per example), the month is billed,
and its days, each estimated from the ledger on its own, add up exactly to the invoice.

Hypothesis drives a synchronous test; the app runs on its own loop (tests/support/threaded.py)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from kupe.server.billing.engine import TenantTerms
from kupe.server.billing.rates import Month
from kupe.server.billing.statement import Statement, money
from kupe.server.db.models import Tenant
from tests.support.harness import Kupe, TenantCreds, test_settings
from tests.support.threaded import app_in_thread

PROPERTY = settings(
    max_examples=5,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
GENEROUS = {"rate_limit_burst": 1_000_000, "rate_limit_rps": 1_000_000}
events = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=27 * 24 * 60),  # minutes into the month
        st.sampled_from(["create", "resize", "delete", "plan"]),
        st.integers(min_value=1, max_value=2),  # vCPUs
    ),
    max_size=8,
)


class Driver:
    def __init__(self, portal: BlockingPortal, kupe: Kupe) -> None:
        self.portal = portal
        self.kupe = kupe
        self.names = itertools.count()

    def call(self, method: str, creds: TenantCreds, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            url = creds.url(path)
            return await self.kupe.client.request(method, url, headers=creds.headers, **kwargs)

        return self.portal.call(call)

    def until(self, moment: datetime) -> None:
        seconds = (moment - self.kupe.clock.now()).total_seconds()
        assert seconds >= 0
        self.portal.call(self.kupe.step, seconds)
        self.portal.call(self.kupe.run_for, 10)  # provisioning, resizes and teardowns finish

    def statement(self, tenant: str, month: Month, since: datetime, until: datetime) -> Statement:
        async def compute() -> Statement:
            async with self.kupe.runtime.db.read() as session:
                row = (await session.scalars(select(Tenant).where(Tenant.name == tenant))).one()
                terms = TenantTerms(row.id, row.enforce_metrics_limit, row.enforce_log_limit)
                return await self.kupe.runtime.billing.statement(
                    session, terms, month, until, since=since
                )

        return self.portal.call(compute)


def exact(statement: Statement) -> dict[tuple[str, str], int]:
    """Every line's exact amount (resource-microseconds, or microseconds on a plan)."""
    amounts: dict[tuple[str, str], int] = {}
    for line in statement.lines:
        key = (line.kind, f"{line.unit_price}")
        amounts[key] = amounts.get(key, 0) + line.units
    return amounts


def test_the_days_of_a_month_add_up_to_its_invoice(database_url: str, tmp_path: Path) -> None:
    with app_in_thread(test_settings(tmp_path, database_url, **GENEROUS)) as (portal, kupe):
        driver = Driver(portal, kupe)

        @PROPERTY
        @given(events=events)
        def check(events: list[tuple[int, str, int]]) -> None:
            month = Month.of(kupe.clock.now()).next()
            driver.until(month.start)
            name = f"t{next(driver.names)}"
            creds = portal.call(kupe.tenant, name, "pro")
            live: list[str] = []
            plan = "pro"
            for minutes, action, cpus in sorted(events):
                at = month.start + timedelta(minutes=minutes)
                if at <= kupe.clock.now():
                    continue
                driver.until(at)
                if action == "create" and len(live) < 3:
                    cluster = f"c{next(driver.names)}"
                    body = {
                        "name": cluster,
                        "displayName": cluster,
                        "type": "shared",
                        "resources": {"cpu": str(cpus), "memory": "2Gi", "storage": "10Gi"},
                    }
                    assert driver.call("POST", creds, "/clusters", json=body).status_code == 201
                    live.append(cluster)
                elif action == "resize" and live:
                    patch = {"resources": {"cpu": str(cpus)}}
                    answer = driver.call("PATCH", creds, f"/clusters/{live[0]}", json=patch)
                    assert answer.status_code == 200, answer.text
                elif action == "delete" and live:
                    assert (
                        driver.call("DELETE", creds, f"/clusters/{live.pop()}").status_code == 204
                    )
                elif action == "plan":
                    plan = "business" if plan == "pro" else "pro"
                    answer = driver.call("PATCH", creds, "", json={"plan": plan})
                    assert answer.status_code == 200, answer.text
            driver.until(month.end + timedelta(minutes=2))
            billed = driver.call("GET", creds, f"/invoices/{month.name}").json()
            assert billed["status"]["phase"] == "Billed"

            whole = driver.statement(name, month, month.start, month.end)
            assert [line.wire() for line in whole.lines] == billed["status"]["lineItems"]
            days: dict[tuple[str, str], int] = {}
            day = month.start
            while day < month.end:
                for key, units in exact(
                    driver.statement(name, month, day, day + timedelta(days=1))
                ).items():
                    days[key] = days.get(key, 0) + units
                day += timedelta(days=1)
            assert days == exact(whole)
            # The days' exact amounts, added up and rounded once, are the invoice's lines.
            with localcontext() as ctx:
                ctx.prec = 60
                for line in whole.lines:
                    if line.kind == "platformFee":
                        continue  # one line per time on a plan; checked as a sum below
                    summed = Decimal(days[(line.kind, f"{line.unit_price}")])
                    assert money(summed * line.unit_price / Decimal(line.scale)) == line.cost
            assert billed["status"]["subtotal"] == f"{whole.subtotal:f}"

        check()
