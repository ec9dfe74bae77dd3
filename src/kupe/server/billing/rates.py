"""Rates, plan terms and calendar months: the values a statement is computed from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

MONTH_NAME = re.compile(r"\A(\d{4})-(0[1-9]|1[0-2])\Z")


@dataclass(frozen=True)
class Rates:
    """One version of the rates, in force from `effective_from` until the next version."""

    effective_from: datetime
    currency: str
    cpu_core_hour: Decimal
    memory_gib_hour: Decimal
    storage_gib_hour: Decimal
    metrics_series_month: Decimal
    logs_gb: Decimal

    def same_prices(self, other: Rates) -> bool:
        return (
            self.currency,
            self.cpu_core_hour,
            self.memory_gib_hour,
            self.storage_gib_hour,
            self.metrics_series_month,
            self.logs_gb,
        ) == (
            other.currency,
            other.cpu_core_hour,
            other.memory_gib_hour,
            other.storage_gib_hour,
            other.metrics_series_month,
            other.logs_gb,
        )


@dataclass(frozen=True)
class PlanTerms:
    """What billing needs of a plan: its monthly fee and observability allowances
    (None: unlimited)."""

    platform_fee: Decimal
    max_active_series: int | None
    log_ingest_gb: int | None


@dataclass(frozen=True)
class Month:
    """A calendar month in UTC, named YYYY-MM."""

    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def parse(cls, name: str) -> Month | None:
        """The month `name` names, or None when it is not YYYY-MM."""
        match = MONTH_NAME.match(name)
        if match is None or not 1 <= int(match.group(1)) <= 9998:
            return None
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def name(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)
