"""Billing rules (API §8): invoices as tenants read them, the running estimate on the tenant,
and the operator's usage records, credits and invoice phases."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock, rfc3339
from kupe.core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from kupe.schemas.billing import CurrentUsage, Invoice, InvoiceStatus
from kupe.schemas.common import CONTROL_CHARACTERS
from kupe.server.billing.rates import Month
from kupe.server.db.models import Credit, Tenant
from kupe.server.db.models import Invoice as InvoiceRow
from kupe.server.db.repositories.billing import (
    CreditRepository,
    InvoiceRepository,
    ObservabilityRepository,
    RatesRepository,
)
from kupe.server.db.repositories.ledger import Ledger
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.auth import Principal

# Which phases the operator may move a billed invoice to, from each phase.
TRANSITIONS = {"Billed": {"Paid", "PastDue", "Canceled"}, "PastDue": {"Paid", "Canceled"}}
MAX_CREDIT = Decimal("1000000000")
MAX_LOGS_GB = Decimal("1000000000000")


def parse_month(name: str) -> Month:
    month = Month.parse(name)
    if month is None:
        raise BadRequest(f"invoice names are months, YYYY-MM, not {name[:20]!r}", field="name")
    return month


def invoice_view(row: InvoiceRow) -> Invoice:
    return Invoice.model_validate(
        {
            "name": row.name,
            "billingPeriod": {"start": row.period_start, "end": row.period_end},
            "createdAt": row.created_at.replace(microsecond=0),
            "resourceVersion": str(row.resource_version),
            "status": InvoiceStatus.model_validate(
                {
                    "phase": row.phase,
                    "currency": row.currency,
                    "lineItems": row.line_items,
                    "subtotal": row.subtotal,
                    "creditsApplied": row.credits_applied,
                    "total": row.total,
                }
            ),
        }
    )


async def current_usage(
    session: AsyncSession, tenant_id: str, now: datetime, refresh_seconds: float
) -> CurrentUsage:
    """This month's estimate as the reconciler last computed it (one indexed read): stale,
    with the reason, when there is none yet or it was not refreshed for two intervals."""
    month = Month.of(now)
    row = await InvoiceRepository(session, tenant_id).get(month.name)
    if row is None or row.estimate is None or row.estimated_at is None:
        return CurrentUsage(
            period_start=month.start,
            period_end=month.end,
            currency=row.currency if row else await RatesRepository(session).currency(),
            stale=True,
            error="This month's estimate has not been computed yet",
        )
    usage = CurrentUsage.model_validate(
        {**row.estimate, "updatedAt": row.estimated_at.replace(microsecond=0), "stale": False}
    )
    if now - row.estimated_at > timedelta(seconds=2 * refresh_seconds):
        usage.stale = True
        usage.error = (
            f"The estimate was last computed at {rfc3339(row.estimated_at)}; "
            "the reconciler has not refreshed it since"
        )
    return usage


class BillingService:
    def __init__(self, clock: Clock, refresh_seconds: float) -> None:
        self.clock = clock
        self.refresh_seconds = refresh_seconds

    # -- tenants' reads ----------------------------------------------------------------------

    async def list(self, session: AsyncSession, principal: Principal) -> list[InvoiceRow]:
        return list(await InvoiceRepository(session, principal.tenant_id).list())

    async def get(self, session: AsyncSession, principal: Principal, name: str) -> InvoiceRow:
        parse_month(name)
        row = await InvoiceRepository(session, principal.tenant_id).get(name)
        if row is None:
            raise NotFound(f"Invoice {name!r} not found")
        return row

    async def current_usage(self, session: AsyncSession, tenant_id: str) -> CurrentUsage:
        return await current_usage(session, tenant_id, self.clock.now(), self.refresh_seconds)

    # -- the operator's ----------------------------------------------------------------------

    async def record_usage(
        self,
        session: AsyncSession,
        tenant: Tenant,
        *,
        metrics_series: int,
        logs_gb: str,
        period: str | None,
    ) -> dict[str, Any]:
        """Set a month's observability usage (replacing what was recorded); refused once the
        month's invoice is billed."""
        now = self.clock.now()
        month = parse_month(period) if period is not None else Month.of(now)
        if month.start > now:
            raise ValidationFailed("the month has not started yet", field="month")
        if metrics_series < 0:
            raise ValidationFailed("metrics series must be 0 or more", field="metricsSeries")
        gb = _decimal(logs_gb, "logsGB", places=3, most=MAX_LOGS_GB, zero_ok=True)
        await TenantRepository(session).lock(tenant.id)
        invoice = await InvoiceRepository(session, tenant.id).get(month.name)
        if invoice is not None and invoice.phase != "Draft":
            raise Conflict(
                f"Invoice {month.name} is {invoice.phase}; a billed invoice never changes",
                code="INVOICE_BILLED",
            )
        await ObservabilityRepository(session, tenant.id).put(month.name, metrics_series, gb, now)
        await Ledger(session).touch(tenant.id, now)
        return {
            "tenant": tenant.name,
            "month": month.name,
            "metricsSeries": metrics_series,
            "logsGB": f"{gb:f}",
            "recordedAt": rfc3339(now),
        }

    async def grant_credit(
        self, session: AsyncSession, tenant: Tenant, amount: str, reason: str
    ) -> dict[str, Any]:
        value = _decimal(amount, "amount", places=2, most=MAX_CREDIT, zero_ok=False)
        reason = reason.strip()
        if not reason or len(reason) > 500 or CONTROL_CHARACTERS.search(reason):
            raise ValidationFailed(
                "reason must be 1-500 characters without control characters", field="reason"
            )
        now = self.clock.now()
        await TenantRepository(session).lock(tenant.id)
        credit = Credit(
            id=uuid.uuid4().hex,
            tenant_id=tenant.id,
            amount=f"{value.quantize(Decimal('0.01')):f}",
            reason=reason,
            granted_at=now,
        )
        CreditRepository(session, tenant.id).add(credit)
        await session.flush()
        await Ledger(session).touch(tenant.id, now)
        balance = await CreditRepository(session, tenant.id).balance()
        return {
            "tenant": tenant.name,
            "id": credit.id,
            "amount": credit.amount,
            "reason": reason,
            "grantedAt": rfc3339(now),
            "balance": f"{balance.quantize(Decimal('0.01')):f}",
        }

    async def set_phase(
        self, session: AsyncSession, tenant: Tenant, name: str, phase: str, resource_version: int
    ) -> InvoiceRow:
        """The operator's Paid / PastDue / Canceled; a billed invoice's amounts stay."""
        parse_month(name)
        row = await InvoiceRepository(session, tenant.id).get(name)
        if row is None:
            raise NotFound(f"Invoice {name!r} not found")
        if row.phase == phase:
            return row
        if phase not in TRANSITIONS.get(row.phase, set()):
            raise Conflict(
                f"Invoice {name} is {row.phase} and cannot become {phase}",
                code="INVOICE_PHASE",
            )
        row.phase = phase
        row.resource_version = resource_version
        await session.flush()
        return row


def _decimal(text: str, field: str, *, places: int, most: Decimal, zero_ok: bool) -> Decimal:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValidationFailed(
            f"{field} must be a decimal number, e.g. 25.00", field=field
        ) from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or (isinstance(exponent, int) and -exponent > places):
        raise ValidationFailed(f"{field} must have at most {places} decimal places", field=field)
    if value < 0 or (value == 0 and not zero_ok) or value > most:
        lower = "0 or more" if zero_ok else "more than 0"
        raise ValidationFailed(f"{field} must be {lower} and at most {most}", field=field)
    return value
