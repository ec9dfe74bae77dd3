"""A tenant's statement for (part of) a month, computed exactly from the ledger.

Time is counted in whole microseconds and resources in millicores and bytes, so every quantity
is an integer (resource x microseconds) until the very end: adding up the days of a month gives
exactly the month. Each line's cost is that integer times the unit price over the unit's size,
rounded once, half up, to the penny; the subtotal is the sum of the rounded lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from kupe.server.billing.rates import Month, PlanTerms, Rates

CENT = Decimal("0.01")
QUANTITY_PLACES = Decimal("0.0001")
MICROS_PER_HOUR = 3_600_000_000
GIB = 1 << 30
# Enough digits that a quotient is exact well beyond the penny it is rounded to.
_EXACT = Context(prec=60)


def money(value: Decimal) -> Decimal:
    """Round to the penny, half up (the one rounding rule of every cost)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def show_quantity(value: Decimal) -> str:
    """A quantity for people: at most four places, half up, no trailing zeros."""
    rounded = value.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP).normalize()
    return f"{rounded:f}"


def _micros(start: datetime, end: datetime) -> int:
    return max(0, (end - start) // timedelta(microseconds=1))


@dataclass(frozen=True)
class Interval:
    """A cluster's allocation over [started_at, ended_at) (open while ended_at is None)."""

    started_at: datetime
    ended_at: datetime | None
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


@dataclass(frozen=True)
class PlanSpan:
    """A time on one plan at one monthly fee."""

    plan: str
    platform_fee: Decimal
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class Observability:
    """A month's observability usage as recorded."""

    metrics_series: int
    logs_gb: Decimal


# kind -> (unit, description, size of one unit in resource-microseconds)
_COMPUTE = {
    "cpu": ("vCPU-hour", "CPU", 1000 * MICROS_PER_HOUR),
    "memory": ("GiB-hour", "Memory", GIB * MICROS_PER_HOUR),
    "storage": ("GiB-hour", "Storage", GIB * MICROS_PER_HOUR),
}


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    cost: Decimal
    # Exact amounts behind `quantity`: `units` of size `scale` (compute, fee), for checks.
    units: int = 0
    scale: int = 1

    def wire(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "quantity": show_quantity(self.quantity),
            "unit": self.unit,
            "unitPrice": f"{self.unit_price:f}",
            "cost": f"{self.cost:f}",
        }


@dataclass(frozen=True)
class Statement:
    """What a tenant owes for [start, until) of a month, before credits."""

    currency: str
    lines: list[Line]
    observability: dict[str, Any] = field(default_factory=dict)
    # When the observability usage it includes was recorded (None: none was).
    usage_recorded_at: datetime | None = None

    @property
    def subtotal(self) -> Decimal:
        return sum((line.cost for line in self.lines), Decimal("0.00"))

    def of_kind(self, kind: str) -> list[Line]:
        return [line for line in self.lines if line.kind == kind]

    def compute_summary(self) -> dict[str, str]:
        """currentUsage.compute: hours and costs per resource."""
        out: dict[str, str] = {}
        for kind, hours_key, cost_key in (
            ("cpu", "cpuCoreHours", "cpuCost"),
            ("memory", "memoryGiBHours", "memoryCost"),
            ("storage", "storageGiBHours", "storageCost"),
        ):
            lines = self.of_kind(kind)
            scale = _COMPUTE[kind][2]
            with localcontext(_EXACT):
                hours = Decimal(sum(line.units for line in lines)) / Decimal(scale)
            out[hours_key] = show_quantity(hours)
            out[cost_key] = f"{sum((line.cost for line in lines), Decimal('0.00')):f}"
        return out


def rates_at(versions: Sequence[Rates], moment: datetime) -> Rates:
    """The version in force at `moment` (the first one also covers the time before it)."""
    current = versions[0]
    for version in versions:
        if version.effective_from <= moment:
            current = version
    return current


def compute(
    month: Month,
    until: datetime,
    *,
    intervals: Sequence[Interval],
    plans: Sequence[PlanSpan],
    versions: Sequence[Rates],
    terms: Callable[[str], PlanTerms | None],
    usage: Observability | None,
    enforce_metrics: bool,
    enforce_logs: bool,
    since: datetime | None = None,
) -> Statement:
    """The statement of [since or the month's start, until) (until is capped at its end)."""
    start = max(month.start, since) if since is not None else month.start
    end = min(until, month.end)
    current = rates_at(versions, end)
    lines = _platform_fees(month, start, end, plans)
    lines += _compute_lines(start, end, intervals, versions)
    plan = _plan_at(plans, end)
    extra, summary = _observability(
        terms(plan) if plan else None, usage, current, enforce_metrics, enforce_logs
    )
    return Statement(current.currency, lines + extra, summary)


def _platform_fees(
    month: Month, start: datetime, end: datetime, plans: Sequence[PlanSpan]
) -> list[Line]:
    whole = _micros(month.start, month.end)
    lines = []
    for span in sorted(plans, key=lambda s: s.started_at):
        held = _micros(max(start, span.started_at), min(end, span.ended_at or end))
        if held <= 0:
            continue
        with localcontext(_EXACT):
            fraction = Decimal(held) / Decimal(whole)
            cost = money(span.platform_fee * Decimal(held) / Decimal(whole))
        lines.append(
            Line(
                "platformFee",
                f"{span.plan} plan platform fee",
                fraction,
                "month",
                span.platform_fee,
                cost,
                units=held,
                scale=whole,
            )
        )
    return lines


def _compute_lines(
    start: datetime, end: datetime, intervals: Sequence[Interval], versions: Sequence[Rates]
) -> list[Line]:
    # Rate version i is in force over [bounds[i], bounds[i + 1]).
    bounds = [start] + [v.effective_from for v in versions[1:]] + [end]
    units: dict[tuple[str, int], int] = {}
    for interval in intervals:
        a = max(start, interval.started_at)
        b = min(end, interval.ended_at or end)
        if b <= a:
            continue
        for index in range(len(versions)):
            lo, hi = max(a, bounds[index]), min(b, bounds[index + 1])
            micros = _micros(lo, hi)
            if micros <= 0:
                continue
            for kind, amount in (
                ("cpu", interval.cpu_millis),
                ("memory", interval.memory_bytes),
                ("storage", interval.storage_bytes),
            ):
                units[(kind, index)] = units.get((kind, index), 0) + amount * micros
    lines = []
    for kind in _COMPUTE:
        unit, label, scale = _COMPUTE[kind]
        for index, version in enumerate(versions):
            held = units.get((kind, index), 0)
            if held <= 0:
                continue
            price = _price(version, kind)
            with localcontext(_EXACT):
                quantity = Decimal(held) / Decimal(scale)
                cost = money(Decimal(held) * price / Decimal(scale))
            lines.append(Line(kind, f"{label}, {unit}s", quantity, unit, price, cost, held, scale))
    return lines


def _price(version: Rates, kind: str) -> Decimal:
    return {
        "cpu": version.cpu_core_hour,
        "memory": version.memory_gib_hour,
        "storage": version.storage_gib_hour,
    }[kind]


def _plan_at(plans: Sequence[PlanSpan], moment: datetime) -> str | None:
    """The plan in force just before `moment` (the last one started before it)."""
    started = [span for span in plans if span.started_at < moment]
    return max(started, key=lambda s: s.started_at).plan if started else None


def _observability(
    terms: PlanTerms | None,
    usage: Observability | None,
    rates: Rates,
    enforce_metrics: bool,
    enforce_logs: bool,
) -> tuple[list[Line], dict[str, Any]]:
    series = usage.metrics_series if usage else 0
    logs = usage.logs_gb if usage else Decimal(0)
    series_allowed = terms.max_active_series if terms else None
    logs_allowed = terms.log_ingest_gb if terms else None
    lines = []
    metrics_cost = logs_cost = Decimal("0.00")
    if series_allowed is not None and not enforce_metrics and series > series_allowed:
        over = Decimal(series - series_allowed)
        metrics_cost = money(over * rates.metrics_series_month)
        lines.append(
            Line(
                "metricsOverage",
                f"Metrics beyond the plan's {series_allowed} active series",
                over,
                "series",
                rates.metrics_series_month,
                metrics_cost,
            )
        )
    if logs_allowed is not None and not enforce_logs and logs > logs_allowed:
        over_gb = logs - logs_allowed
        logs_cost = money(over_gb * rates.logs_gb)
        lines.append(
            Line(
                "logOverage",
                f"Logs beyond the plan's {logs_allowed} GB",
                over_gb,
                "GB",
                rates.logs_gb,
                logs_cost,
            )
        )
    summary = {
        "metricsActiveSeries": series,
        "metricsIncludedSeries": series_allowed,
        "metricsLimitEnforced": enforce_metrics,
        "metricsOverageCost": f"{metrics_cost:f}",
        "logsGB": f"{logs:f}",
        "logsIncludedGB": logs_allowed,
        "logsLimitEnforced": enforce_logs,
        "logsOverageCost": f"{logs_cost:f}",
    }
    return lines, summary


def apply_credits(subtotal: Decimal, balance: Decimal) -> tuple[Decimal, Decimal]:
    """(credits applied, total): credits cover the subtotal at most; the rest carries forward."""
    applied = min(max(balance, Decimal("0.00")), subtotal)
    return money(applied), money(subtotal - applied)
