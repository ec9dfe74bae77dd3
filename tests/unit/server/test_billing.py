"""The billing arithmetic on its own: exact quantities, one rounding, versioned rates, credits,
calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kupe.server.billing.rates import Month, PlanTerms, Rates
from kupe.server.billing.settings import BillingSettings
from kupe.server.billing.statement import (
    Interval,
    Observability,
    PlanSpan,
    Statement,
    apply_credits,
    compute,
)

MARCH = Month(2026, 3)
GIB = 1 << 30
DEFAULT = BillingSettings().rates(datetime(2020, 1, 1, tzinfo=UTC))
HOSTED = (4000, 16 * GIB, 100 * GIB)


def statement(
    intervals: list[Interval],
    *,
    versions: list[Rates] | None = None,
    plans: tuple[PlanSpan, ...] = (),
) -> Statement:
    return compute(
        MARCH,
        MARCH.end,
        intervals=intervals,
        plans=list(plans),
        versions=versions or [DEFAULT],
        terms=lambda _plan: None,
        usage=None,
        enforce_metrics=False,
        enforce_logs=False,
    )


def hosted(start: datetime, hours: float) -> Interval:
    return Interval(start, start + timedelta(hours=hours), *HOSTED)


def test_the_hosted_cluster_costs_0_2276_an_hour_exactly() -> None:
    result = statement([hosted(MARCH.start, 1)])
    exact = sum(
        Decimal(line.units) * line.unit_price / Decimal(line.scale) for line in result.lines
    )
    assert exact == Decimal("0.2276")


def test_the_hosted_month_is_166_15() -> None:
    result = statement([hosted(MARCH.start, 730)])
    costs = {line.kind: f"{line.cost}" for line in result.lines}
    assert costs == {"cpu": "87.60", "memory": "70.08", "storage": "8.47"}
    assert result.subtotal == Decimal("166.15")


def test_part_of_an_hour_pays_for_the_part_and_the_month_caps_an_interval() -> None:
    # 90 seconds of 1 vCPU: 0.025 vCPU-hours, 0.00075 -> 0.00 (half up at the penny).
    result = statement([Interval(MARCH.start, MARCH.start + timedelta(seconds=90), 1000, 0, 0)])
    [cpu] = result.lines
    assert (cpu.wire()["quantity"], cpu.wire()["cost"]) == ("0.025", "0.00")
    # Open since February, still open: only March counts.
    spanning = Interval(MARCH.start - timedelta(days=3), None, 1000, 0, 0)
    [cpu] = statement([spanning]).lines
    assert cpu.wire()["quantity"] == "744"


def test_a_rate_change_applies_from_its_effective_time_never_before() -> None:
    later = BillingSettings(cpu_core_hour=Decimal("0.060")).rates(MARCH.start + timedelta(days=10))
    result = statement(
        [Interval(MARCH.start, MARCH.start + timedelta(days=20), 1000, 0, 0)],
        versions=[DEFAULT, later],
    )
    lines = [
        (line.wire()["quantity"], line.wire()["unitPrice"], line.wire()["cost"])
        for line in result.lines
    ]
    assert lines == [("240", "0.030", "7.20"), ("240", "0.060", "14.40")]


def test_platform_fees_are_prorated_by_time_on_each_plan() -> None:
    switch = MARCH.start + timedelta(hours=300)
    result = statement(
        [],
        plans=(
            PlanSpan("starter", Decimal("0.00"), MARCH.start, switch),
            PlanSpan("pro", Decimal("49.00"), switch, None),
        ),
    )
    fees = [
        (line.description, line.wire()["quantity"], line.wire()["cost"]) for line in result.lines
    ]
    assert fees == [
        ("starter plan platform fee", "0.4032", "0.00"),
        ("pro plan platform fee", "0.5968", "29.24"),  # 49 x 444 / 744 = 29.2419...
    ]


def test_overage_needs_an_allowance_and_no_enforcement() -> None:
    plans = [PlanSpan("starter", Decimal("0"), MARCH.start, None)]
    terms = PlanTerms(Decimal("0"), 10_000, 10)
    for enforce, expected in (
        (False, {"metricsOverage": "3.00", "logOverage": "0.15"}),
        (True, {}),
    ):
        result = compute(
            MARCH,
            MARCH.end,
            intervals=[],
            plans=plans,
            versions=[DEFAULT],
            terms=lambda _plan: terms,
            usage=Observability(11_000, Decimal("10.5")),
            enforce_metrics=enforce,
            enforce_logs=enforce,
        )
        overage = {line.kind: f"{line.cost}" for line in result.lines if line.kind != "platformFee"}
        assert overage == expected


@pytest.mark.parametrize(
    ("subtotal", "balance", "applied", "total"),
    [
        ("48.08", "60.00", "48.08", "0.00"),
        ("49.00", "11.92", "11.92", "37.08"),
        ("10.00", "0", "0.00", "10.00"),
        ("0.00", "5.00", "0.00", "0.00"),
    ],
)
def test_credits_cover_the_subtotal_at_most(
    subtotal: str, balance: str, applied: str, total: str
) -> None:
    assert apply_credits(Decimal(subtotal), Decimal(balance)) == (Decimal(applied), Decimal(total))


def test_months_are_calendar_months_in_utc() -> None:
    assert Month.parse("2026-02") == Month(2026, 2)
    assert Month(2026, 2).end - Month(2026, 2).start == timedelta(days=28)
    assert Month(2026, 12).next() == Month(2027, 1)
    for bad in ("2026-13", "2026-1", "26-01", "0000-01", "2026-01x", ""):
        assert Month.parse(bad) is None
    assert Month.of(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)).name == "2026-03"
