"""Billing wire models (API §8): invoices and the running estimate of the current month.

Money is a decimal string with two places; quantities and unit prices are decimal strings
too (never floats)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kupe.schemas.common import ResponseModel, Timestamp

InvoicePhase = Literal["Draft", "Billed", "Paid", "PastDue", "Canceled"]
LineKind = Literal["platformFee", "cpu", "memory", "storage", "metricsOverage", "logOverage"]


class LineItem(ResponseModel):
    kind: LineKind
    description: str
    quantity: str = Field(description="Decimal string: hours, months, series or GB.")
    unit: str
    unit_price: str = Field(description="Decimal string, in the invoice's currency.")
    cost: str = Field(description="quantity x unitPrice, rounded half up to two places.")


class BillingPeriod(ResponseModel):
    start: Timestamp
    end: Timestamp


class InvoiceStatus(ResponseModel):
    phase: InvoicePhase
    currency: str
    line_items: list[LineItem] = Field(default_factory=list)
    subtotal: str
    credits_applied: str
    total: str


class Invoice(ResponseModel):
    """A tenant's invoice for one calendar month (UTC); while Draft, the running estimate."""

    name: str = Field(description="The month, YYYY-MM.")
    billing_period: BillingPeriod
    created_at: Timestamp
    resource_version: str
    status: InvoiceStatus


class ComputeUsage(ResponseModel):
    cpu_core_hours: str
    cpu_cost: str
    memory_gib_hours: str = Field(alias="memoryGiBHours")
    memory_cost: str
    storage_gib_hours: str = Field(alias="storageGiBHours")
    storage_cost: str


class ObservabilityUsage(ResponseModel):
    metrics_active_series: int = Field(description="P95 active series recorded this month.")
    metrics_included_series: int | None = Field(None, description="The plan's; null: unlimited.")
    metrics_limit_enforced: bool
    metrics_overage_cost: str
    logs_gb: str = Field(alias="logsGB")
    logs_included_gb: int | None = Field(None, alias="logsIncludedGB")
    logs_limit_enforced: bool
    logs_overage_cost: str


class CurrentUsage(ResponseModel):
    """The month so far, as of `updatedAt`: what its invoice would be if it ended then."""

    period_start: Timestamp
    period_end: Timestamp
    currency: str
    compute: ComputeUsage | None = None
    observability: ObservabilityUsage | None = None
    estimated_subtotal: str | None = None
    estimated_credits_applied: str | None = None
    estimated_total: str | None = None
    updated_at: Timestamp | None = None
    stale: bool
    error: str | None = Field(None, description="Why the estimate is stale, when it is.")
