"""The operator's billing settings: rates and currency (versioned when they change), and how
the reconciler keeps estimates and bills months."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kupe.server.billing.rates import Rates


class BillingSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(
        "GBP", pattern=r"^[A-Z]{3}$", description="ISO 4217 code invoices are in."
    )
    cpu_core_hour: Decimal = Field(
        Decimal("0.030"), ge=0, description="Price of one vCPU allocated for an hour."
    )
    memory_gib_hour: Decimal = Field(
        Decimal("0.006"), ge=0, description="Price of one GiB of memory allocated for an hour."
    )
    storage_gib_hour: Decimal = Field(
        Decimal("0.000116"), ge=0, description="Price of one GiB of storage allocated for an hour."
    )
    metrics_series_month: Decimal = Field(
        Decimal("0.003"),
        ge=0,
        description="Price of one P95 active metrics series beyond the plan's allowance, a month.",
    )
    logs_gb: Decimal = Field(
        Decimal("0.30"), ge=0, description="Price of one GB of logs beyond the plan's allowance."
    )
    estimate_refresh_seconds: float = Field(
        3600.0,
        gt=0,
        description="How often the running estimate (tenant.status.currentUsage) is recomputed "
        "when nothing changed; a change to a cluster or the plan recomputes it at once.",
    )
    finalize_delay_seconds: float = Field(
        60.0,
        ge=0,
        lt=3600,
        description="How long after a month ends its invoices are billed (late usage records "
        "still count until then); under an hour.",
    )

    def rates(self, effective_from: datetime) -> Rates:
        """These settings as a rates version starting at `effective_from`."""
        return Rates(
            effective_from=effective_from,
            currency=self.currency,
            cpu_core_hour=self.cpu_core_hour,
            memory_gib_hour=self.memory_gib_hour,
            storage_gib_hour=self.storage_gib_hour,
            metrics_series_month=self.metrics_series_month,
            logs_gb=self.logs_gb,
        )
