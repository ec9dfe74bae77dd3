"""Billing (API §8) on SQLite and PostgreSQL with a fake clock across hour, day and month
boundaries: metering from the ledger, invoices billed by the reconciler, credits, the running
estimate on the tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from kupe.core.clock import FakeClock
from kupe.server.admin import Admin
from kupe.server.db.models import BillingRates, UsageInterval
from kupe.server.services.plan import PlanCatalogue
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
APRIL = datetime(2026, 4, 1, tzinfo=UTC)
HOUR = 3600.0
GIB = Decimal(1 << 30)


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    clock = FakeClock(MARCH + timedelta(hours=14))
    async with running_kupe(test_settings(tmp_path, database_url), clock) as app:
        yield app


def admin(kupe: Kupe) -> Admin:
    return Admin(kupe.runtime.db, PlanCatalogue.built_in(), kupe.clock)


async def invoice(kupe: Kupe, creds: TenantCreds, name: str) -> dict[str, Any]:
    response = await kupe.client.get(creds.url(f"/invoices/{name}"), headers=creds.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def usage(kupe: Kupe, creds: TenantCreds) -> dict[str, Any]:
    response = await kupe.client.get(creds.url(), headers=creds.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["status"]["currentUsage"]
    return body


def lines(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["kind"]: (item["quantity"], item["cost"]) for item in body["status"]["lineItems"]}


async def until(kupe: Kupe, moment: datetime) -> None:
    """Move the clock to `moment` and reconcile what is due then."""
    await kupe.step((moment - kupe.clock.now()).total_seconds())


def pennies(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


async def test_the_hosted_example_to_the_penny(kupe: Kupe) -> None:
    # 4 vCPU / 16 GiB / 100 GiB (the enterprise default) from 14:00 on 1 March to the end
    # of the month: 730 hours.
    acme = await kupe.tenant("acme", plan="enterprise")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.run_for(10)
    await until(kupe, MARCH + timedelta(hours=15))
    first_hour = await usage(kupe, acme)
    assert first_hour["stale"] is False
    assert first_hour["compute"]["cpuCoreHours"] == "4"
    # £0.2276 an hour: 0.12 + 0.096 + 0.0116, each rounded half up.
    assert first_hour["compute"]["cpuCost"] == "0.12"
    assert first_hour["compute"]["memoryCost"] == "0.10"
    assert first_hour["compute"]["storageCost"] == "0.01"
    assert first_hour["estimatedSubtotal"] == "0.23"

    await until(kupe, APRIL - timedelta(seconds=1))
    draft = await invoice(kupe, acme, "2026-03")
    assert draft["status"]["phase"] == "Draft"
    delay = kupe.runtime.settings.billing.finalize_delay_seconds
    await until(kupe, APRIL + timedelta(seconds=delay))
    billed = await invoice(kupe, acme, "2026-03")
    assert billed["status"]["phase"] == "Billed"
    assert billed["billingPeriod"] == {
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
    }
    assert lines(billed) == {
        "platformFee": ("0.9812", "0.00"),  # 730 of 744 hours, at £0.00
        "cpu": ("2920", "87.60"),
        "memory": ("11680", "70.08"),
        "storage": ("73000", "8.47"),
    }
    assert billed["status"]["subtotal"] == "166.15"
    assert billed["status"]["creditsApplied"] == "0.00"
    assert billed["status"]["total"] == "166.15"
    assert billed["status"]["currency"] == "GBP"
    # April's draft exists and the cluster keeps counting in it.
    await until(kupe, APRIL + timedelta(hours=2))
    april = await usage(kupe, acme)
    assert april["periodStart"] == "2026-04-01T00:00:00Z"
    assert april["compute"]["cpuCoreHours"] == "8"


async def test_create_resize_and_delete_mid_month_count_to_the_microsecond(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")  # created 14:00 on 1 March
    created_at = kupe.clock.now()
    one_cpu = {"cpu": "1", "memory": "2Gi", "storage": "10Gi"}
    assert (await kupe.create_cluster(acme, "web", resources=one_cpu)).status_code == 201
    await kupe.run_for(10)
    # A resize counts from the moment it is applied, not from the request.
    await until(kupe, datetime(2026, 3, 10, 6, 30, tzinfo=UTC))
    resized = await kupe.client.patch(
        acme.url("/clusters/web"), json={"resources": {"cpu": "3"}}, headers=acme.headers
    )
    assert resized.status_code == 200, resized.text
    requested_at = kupe.clock.now()
    await kupe.run_for(10)
    assert await kupe.phase(acme, "web") == "Running"
    async with kupe.runtime.db.read() as session:
        applied = await session.scalar(
            select(UsageInterval.started_at).where(UsageInterval.cpu_millis == 3000)
        )
    assert applied is not None
    # The simulated provider resizes at once: applied by the first reconcile after the request.
    assert requested_at <= applied <= kupe.clock.now()

    await until(kupe, datetime(2026, 3, 20, 23, 59, 59, tzinfo=UTC))
    assert (
        await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers)
    ).status_code == 204
    await kupe.run_for(10)
    assert await kupe.phase(acme, "web") == "<gone>"
    async with kupe.runtime.db.read() as session:
        removed = await session.scalar(
            select(UsageInterval.ended_at).where(UsageInterval.cpu_millis == 3000)
        )
    assert removed is not None
    assert removed > datetime(2026, 3, 20, 23, 59, 59, tzinfo=UTC)

    await until(kupe, APRIL + timedelta(minutes=5))
    billed = await invoice(kupe, acme, "2026-03")
    assert billed["status"]["phase"] == "Billed"
    first = Decimal((applied - created_at) // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    second = Decimal((removed - applied) // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    cpu_hours = first * 1 + second * 3
    memory_hours = (first + second) * 2
    storage_hours = (first + second) * 10
    month = Decimal(744 * 3_600_000_000)
    on_plan = Decimal((APRIL - created_at) // timedelta(microseconds=1))
    expected = {
        "platformFee": pennies(Decimal("49.00") * on_plan / month),
        "cpu": pennies(cpu_hours * Decimal("0.030")),
        "memory": pennies(memory_hours * Decimal("0.006")),
        "storage": pennies(storage_hours * Decimal("0.000116")),
    }
    assert {kind: cost for kind, (_q, cost) in lines(billed).items()} == expected
    assert billed["status"]["subtotal"] == pennies(sum(Decimal(v) for v in expected.values()))
    # Nothing of the deleted cluster counts in April.
    await until(kupe, APRIL + timedelta(days=2))
    assert (await usage(kupe, acme))["compute"]["cpuCoreHours"] == "0"


async def test_a_plan_change_mid_month_prorates_the_fee(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="starter")  # 14:00 on 1 March
    await until(kupe, datetime(2026, 3, 16, 14, 0, tzinfo=UTC))  # 15 days later
    moved = await kupe.client.patch(acme.url(), json={"plan": "pro"}, headers=acme.headers)
    assert moved.status_code == 200, moved.text
    await until(kupe, APRIL + timedelta(minutes=5))
    billed = await invoice(kupe, acme, "2026-03")
    fees = [
        (item["description"], item["quantity"], item["unitPrice"], item["cost"])
        for item in billed["status"]["lineItems"]
        if item["kind"] == "platformFee"
    ]
    # 360 of 744 hours on starter (free), 370 on pro at 49.00 a month.
    assert fees == [
        ("starter plan platform fee", "0.4839", "0.00", "0.00"),
        ("pro plan platform fee", "0.4973", "49.00", pennies(Decimal(49) * 370 / 744)),
    ]
    assert billed["status"]["total"] == "24.37"
    # April: a whole month on pro.
    await until(kupe, datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
    assert (await invoice(kupe, acme, "2026-04"))["status"]["total"] == "49.00"


async def test_credits_larger_than_the_subtotal_carry_forward(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="pro")
    await until(kupe, MARCH + timedelta(days=1))
    granted = await admin(kupe).grant_credit("acme", "60.00", "migration discount")
    assert granted["balance"] == "60.00"
    await until(kupe, MARCH + timedelta(days=2))
    estimate = await usage(kupe, acme)
    assert estimate["estimatedCreditsApplied"] == estimate["estimatedSubtotal"]
    assert estimate["estimatedTotal"] == "0.00"

    await until(kupe, APRIL + timedelta(minutes=5))
    march = await invoice(kupe, acme, "2026-03")
    subtotal = Decimal(march["status"]["subtotal"])  # 730 hours of pro: 48.08
    assert subtotal == Decimal("48.08")
    assert march["status"]["creditsApplied"] == "48.08"
    assert march["status"]["total"] == "0.00"
    await until(kupe, datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
    april = await invoice(kupe, acme, "2026-04")
    assert april["status"]["subtotal"] == "49.00"
    assert april["status"]["creditsApplied"] == pennies(Decimal("60.00") - subtotal)  # 11.92
    assert april["status"]["total"] == "37.08"
    # Credits never raise limits: the plan's pool is what it was.
    tenant = (await kupe.client.get(acme.url(), headers=acme.headers)).json()
    assert tenant["status"]["poolResources"] == {"cpu": "8", "memory": "32Gi", "storage": "200Gi"}


async def test_a_restart_loses_no_metered_time(database_url: str, tmp_path: Path) -> None:
    clock = FakeClock(MARCH)
    settings = test_settings(tmp_path, database_url)
    async with running_kupe(settings, clock) as kupe:
        acme = await kupe.tenant("acme", plan="enterprise")
        assert (await kupe.create_cluster(acme, "web")).status_code == 201
        await kupe.run_for(10)
        start = kupe.clock.now()
    clock.advance(10 * HOUR)  # nobody runs for ten hours
    async with running_kupe(settings, clock) as kupe:
        await kupe.step()
        estimate = await usage(kupe, acme)
        # From creation at midnight, across the downtime: 4 vCPU x 10 h 0 m 10 s.
        assert kupe.clock.now() - MARCH == timedelta(hours=10, seconds=10)
        assert estimate["compute"]["cpuCoreHours"] == "40.0111"
        assert kupe.clock.now() - start >= timedelta(hours=10)


async def test_invoices_are_read_by_members_only_with_etags(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    await until(kupe, APRIL + timedelta(minutes=5))
    listed = await kupe.client.get(acme.url("/invoices"), headers=acme.headers)
    assert listed.status_code == 200
    assert [item["name"] for item in listed.json()["items"]] == ["2026-03", "2026-04"]
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    got = await kupe.client.get(acme.url("/invoices/2026-03"), headers=readonly.headers)
    assert got.status_code == 200
    etag = got.headers["etag"]
    assert etag == f'"{got.json()["resourceVersion"]}"'
    again = await kupe.client.get(
        acme.url("/invoices/2026-03"), headers={**acme.headers, "If-None-Match": etag}
    )
    assert again.status_code == 304
    for name, status in (("2026-02", 404), ("2026-13", 400), ("march", 400), ("0000-01", 400)):
        response = await kupe.client.get(acme.url(f"/invoices/{name}"), headers=acme.headers)
        assert response.status_code == status, (name, response.text)
        assert response.json()["code"] in ("NOT_FOUND", "BAD_REQUEST")
    foreign = await kupe.client.get(acme.url("/invoices/2026-03"), headers=globex.headers)
    assert foreign.status_code == 403
    posted = await kupe.client.post(acme.url("/invoices"), json={}, headers=acme.headers)
    assert posted.status_code == 405


async def test_observability_overage_unless_the_limit_is_enforced(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme", plan="starter")  # 10,000 series, 10 GB
    operator = admin(kupe)
    await operator.record_usage("acme", 12_500, "14.5", "2026-03")
    await until(kupe, MARCH + timedelta(days=3))
    estimate = await usage(kupe, acme)
    assert estimate["observability"]["metricsOverageCost"] == "7.50"  # 2,500 x 0.003
    assert estimate["observability"]["logsOverageCost"] == "1.35"  # 4.5 x 0.30
    enforced = await kupe.client.patch(
        acme.url(), json={"enforceMetricsLimit": True}, headers=acme.headers
    )
    assert enforced.status_code == 200
    await until(kupe, APRIL + timedelta(minutes=5))
    billed = await invoice(kupe, acme, "2026-03")
    assert lines(billed) == {"platformFee": ("0.9812", "0.00"), "logOverage": ("4.5", "1.35")}
    # A billed month never changes.
    from kupe.core.errors import Conflict

    with pytest.raises(Conflict):
        await operator.record_usage("acme", 99_000, "99", "2026-03")
    paid = await operator.set_invoice_phase("acme", "2026-03", "Paid")
    assert paid["status"]["phase"] == "Paid"
    assert paid["status"]["total"] == "1.35"
    with pytest.raises(Conflict):
        await operator.set_invoice_phase("acme", "2026-04", "Paid")  # still Draft


async def test_a_rate_change_in_the_settings_is_never_retroactive(
    database_url: str, tmp_path: Path
) -> None:
    clock = FakeClock(MARCH)
    before = test_settings(tmp_path, database_url)
    after = test_settings(tmp_path, database_url, billing={"cpu_core_hour": "0.060"})
    one_cpu = {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}
    async with running_kupe(before, clock) as kupe:
        acme = await kupe.tenant("acme", plan="enterprise")
        assert (await kupe.create_cluster(acme, "web", resources=one_cpu)).status_code == 201
        await until(kupe, MARCH + timedelta(days=10))
    for _restart in range(2):  # the second start with the same rates records nothing new
        async with running_kupe(after, clock) as kupe:
            await kupe.step(60)
    async with running_kupe(after, clock) as kupe:
        await until(kupe, APRIL + timedelta(minutes=5))
        billed = await invoice(kupe, acme, "2026-03")
        cpu = [
            (item["quantity"], item["unitPrice"], item["cost"])
            for item in billed["status"]["lineItems"]
            if item["kind"] == "cpu"
        ]
        assert cpu == [("240", "0.030", "7.20"), ("504", "0.060", "30.24")]
        async with kupe.runtime.db.read() as session:
            versions = (await session.scalars(select(BillingRates.cpu_core_hour))).all()
        assert sorted(versions) == ["0.030", "0.060"]


async def test_the_operator_commands(kupe: Kupe, tmp_path: Path) -> None:
    import asyncio
    import json

    from typer.testing import CliRunner

    from kupe.cli.main import app as cli

    await kupe.tenant("acme", plan="pro")
    env = {
        "KUPE_DATABASE_URL": kupe.runtime.settings.effective_database_url,
        "KUPE_DATA_DIR": str(tmp_path / "operator"),
        "KUPE_LOG_FORMAT": "json",
    }

    async def run(*args: str) -> tuple[int, str, str]:
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["admin", *args], env=env)
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = await run("grant-credit", "acme", "12.50", "--reason", "outage in March")
    assert code == 0, out
    assert json.loads(out)["balance"] == "12.50"
    code, out, _ = await run(
        "record-usage",
        "acme",
        "--metrics-series",
        "60000",
        "--logs-gb",
        "1.5",
        "--month",
        "2026-03",
    )
    assert code == 0, out
    assert json.loads(out)["metricsSeries"] == 60000
    code, out, _ = await run("invoices", "list", "acme")
    assert [item["name"] for item in json.loads(out)["items"]] == ["2026-03"]
    for args, message in (
        (("invoices", "mark-paid", "acme", "2026-03"), "Draft"),
        (("grant-credit", "acme", "0.001", "--reason", "x"), "decimal places"),
        (("grant-credit", "acme", "0", "--reason", "x"), "more than 0"),
        (("record-usage", "acme", "--metrics-series", "1", "--logs-gb", "NaN"), "logsGB"),
        (("invoices", "cancel", "acme", "2026-3"), "YYYY-MM"),
    ):
        code, _out, err = await run(*args)
        assert code == 1, args
        assert message in err, (args, err)


async def test_the_sdk_reads_invoices_and_the_estimate(kupe: Kupe) -> None:
    import httpx

    from kupe.sdk import AsyncClient, BadRequest, NotFound

    acme = await kupe.tenant("acme", plan="pro")
    await until(kupe, APRIL + timedelta(hours=3))
    await kupe.step(600)  # April's first estimate (new months' drafts spread it over 10 min)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=kupe.app))
    async with (
        http,
        AsyncClient(
            "http://kupe.test", api_key=acme.key, tenant="acme", http_client=http
        ) as client,
    ):
        invoices = await client.invoices.list()
        assert [(i.name, i.status.phase) for i in invoices] == [
            ("2026-03", "Billed"),
            ("2026-04", "Draft"),
        ]
        march = await client.invoices.get("2026-03")
        assert march.status.total == "48.08"
        assert march.status.line_items[0].unit_price == "49.00"
        estimate = await client.invoices.usage()
        assert estimate.stale is False
        assert estimate.compute is not None
        assert estimate.compute.memory_gib_hours == "0"
        with pytest.raises(NotFound):
            await client.invoices.get("2026-01")
        with pytest.raises(BadRequest):
            await client.invoices.get("2026-1")


async def test_a_change_while_the_estimate_is_computed_is_not_lost(kupe: Kupe) -> None:
    from kupe.server.db.leases import FinishResult
    from kupe.server.reconciler.kinds.invoice import InvoiceKind
    from kupe.server.reconciler.kinds.invoice_item import INVOICE_LEASES

    acme = await kupe.tenant("acme", plan="enterprise")
    await kupe.step(60)
    [kind] = [k for k in kupe.runtime.kinds if isinstance(k, InvoiceKind)]
    kupe.clock.advance(2 * HOUR)  # the draft is due again (its hourly refresh); nobody ran
    now = kupe.clock.now()
    async with kupe.runtime.db.write() as session:
        [item] = await INVOICE_LEASES.claim(
            session, now=now, owner="worker:1", lease_until=now + timedelta(seconds=30), limit=5
        )
    outcome = await kind.reconcile(item)  # read before the cluster exists
    kupe.clock.advance(1)
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    async with kupe.runtime.db.write() as session:
        result = await kind.write(
            session, item, outcome, resource_version=None, next_at=now + timedelta(hours=1), now=now
        )
    assert result is FinishResult.REQUEUED  # the estimate without the cluster is not recorded
    await kupe.step(HOUR / 2)
    assert (await usage(kupe, acme))["compute"]["cpuCoreHours"] == "2"  # 4 vCPU, half an hour
