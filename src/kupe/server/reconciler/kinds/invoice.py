"""The invoice kind: keep each draft invoice's running estimate fresh, and bill it once its
month has ended.

Billing is one guarded write (phase still Draft, lease still held) in one transaction with the
statement computed from the ledger under the tenant's lock, the credits it spends and the next
month's draft: a crash before the commit leaves the draft for another replica, a crash after
it leaves nothing to do. A billed invoice is no longer leased, so it never changes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.server.billing.engine import Billing, TenantTerms, estimate_document, settle
from kupe.server.billing.rates import Month
from kupe.server.billing.settings import BillingSettings
from kupe.server.billing.statement import Statement
from kupe.server.db.engine import Database
from kupe.server.db.leases import FinishResult
from kupe.server.db.models import Invoice, ObservabilityUsage, Tenant
from kupe.server.db.repositories.billing import draft_values, insert_draft
from kupe.server.reconciler.kind import LeaseCheck, Outcome, always_held
from kupe.server.reconciler.kinds.invoice_item import INVOICE_LEASES, InvoiceItem
from kupe.server.reconciler.policy import RetryPolicy

log = structlog.get_logger("kupe.reconciler")
_DRAFT = (Invoice.phase == "Draft",)
# Seconds over which the first estimates of a new month's drafts are spread.
NEW_DRAFT_SPREAD = 600.0


@dataclass(frozen=True)
class InvoiceUpdate:
    """Bill the invoice now, record a fresh estimate, or wait (an earlier month is unbilled)."""

    bill: bool = False
    statement: Statement | None = None
    credits_applied: Decimal = Decimal("0.00")
    total: Decimal = Decimal("0.00")
    estimate: dict[str, Any] | None = None


InvoiceOutcome = Outcome[InvoiceUpdate]


class InvoiceKind:
    """Draft invoices: estimated while their month runs, billed when it has ended."""

    name = "invoice"
    leases = INVOICE_LEASES

    def __init__(
        self,
        db: Database,
        billing: Billing,
        clock: Clock,
        policy: RetryPolicy,
        settings: BillingSettings,
    ) -> None:
        self.db = db
        self.billing = billing
        self.clock = clock
        self.policy = policy
        self.settings = settings
        # What `write` billed, by (invoice, lease), for `report` after the commit.
        self._billed: dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]] = {}

    def _bills_at(self, item: InvoiceItem) -> datetime:
        return item.period_end + timedelta(seconds=self.settings.finalize_delay_seconds)

    async def reconcile(
        self, item: InvoiceItem, check_lease: LeaseCheck = always_held
    ) -> InvoiceOutcome:
        now = self.clock.now()
        month = Month.of(item.period_end - timedelta(microseconds=1))
        terms = TenantTerms(item.tenant_id, item.enforce_metrics_limit, item.enforce_log_limit)
        if now >= self._bills_at(item):
            # The month is over: its ledger no longer changes (only a late usage record can,
            # which `write` checks for under the tenant's lock).
            async with self.db.read() as session:
                statement = await self.billing.statement(session, terms, month, month.end)
            return Outcome(InvoiceUpdate(bill=True, statement=statement), self.policy.poll_seconds)
        async with self.db.read() as session:
            statement = await self.billing.statement(session, terms, month, now)
            balance = await self.billing.credit_balance(session, item.tenant_id)
        applied, total = settle(statement, balance)
        estimate = estimate_document(month, statement, applied, total)
        refresh = self.policy.jitter(self.settings.estimate_refresh_seconds)
        delay = min(refresh, (self._bills_at(item) - now).total_seconds())
        update = InvoiceUpdate(
            statement=statement, credits_applied=applied, total=total, estimate=estimate
        )
        return Outcome(update, max(delay, 0.0))

    def changes(self, item: InvoiceItem, outcome: InvoiceOutcome) -> bool:
        return outcome.status.bill or outcome.status.statement is not None

    async def write(
        self,
        session: AsyncSession,
        item: InvoiceItem,
        outcome: InvoiceOutcome,
        *,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        update = outcome.status
        if update.bill and update.statement is not None:
            return await self._bill(session, item, update.statement, resource_version, next_at, now)
        values: dict[str, Any] = {}
        if update.statement is not None:
            values = _statement_columns(update.statement, update.credits_applied, update.total)
            values.update(estimate=update.estimate, estimated_at=now)
        if resource_version is not None:
            values["resource_version"] = resource_version
        # Not over a ledger change made since the estimate was read (it moved the draft's
        # next look): then the draft is looked at again at once instead.
        unchanged = Invoice.next_reconcile_at == item.next_reconcile_at
        return await self.leases.finish(
            session, item, values=values, next_at=next_at, now=now, guard=(*_DRAFT, unchanged)
        )

    async def _bill(
        self,
        session: AsyncSession,
        item: InvoiceItem,
        statement: Statement,
        resource_version: int | None,
        next_at: datetime,
        now: datetime,
    ) -> FinishResult:
        """Bill the statement `reconcile` computed, in one transaction with the credits it
        spends and the next month's draft. Under the tenant's lock (serialising with credit
        grants and usage records): unless an earlier month is still unbilled, or usage was
        recorded since the statement was computed; then it looks again."""
        month = Month.of(item.period_end - timedelta(microseconds=1))
        state = await _locked_tenant(session, item)
        if state.earlier_drafts or state.usage_recorded_at != statement.usage_recorded_at:
            return await self.leases.finish(session, item, values={}, next_at=now, now=now)
        balance = await self.billing.credit_balance(session, item.tenant_id)
        applied, total = settle(statement, balance)
        values = _statement_columns(statement, applied, total)
        values.update(
            phase="Billed",
            billed_at=now,
            estimate=estimate_document(month, statement, applied, total),
            estimated_at=now,
        )
        if resource_version is not None:
            values["resource_version"] = resource_version
        result = await self.leases.finish(
            session, item, values=values, next_at=next_at, now=now, guard=_DRAFT
        )
        if result is FinishResult.APPLIED:
            following = month.next()
            if state.removed_at is None or state.removed_at > following.start:
                await self._next_draft(session, item, following, statement.currency, now)
            self._billed[(item.id, item.lease)] = (statement.subtotal, applied, total)
        return result

    async def _next_draft(
        self, session: AsyncSession, item: InvoiceItem, month: Month, currency: str, now: datetime
    ) -> None:
        values = draft_values(
            item.tenant_id,
            month.name,
            month.start,
            month.end,
            currency=currency,
            resource_version=await self.db.next_resource_version(session),
            now=now,
        )
        # Its first estimate a little later, spread out: every tenant's month starts together.
        values["next_reconcile_at"] = now + timedelta(seconds=self.policy.jitter(NEW_DRAFT_SPREAD))
        await insert_draft(session, values)

    def report(self, item: InvoiceItem, outcome: InvoiceOutcome, result: FinishResult) -> None:
        billed = self._billed.pop((item.id, item.lease), None)
        if result is FinishResult.APPLIED and outcome.status.bill and billed is not None:
            subtotal, applied, total = billed
            log.info(
                "invoice.billed",
                tenant=item.tenant,
                invoice=item.name,
                subtotal=f"{subtotal:f}",
                credits_applied=f"{applied:f}",
                total=f"{total:f}",
            )


def _statement_columns(statement: Statement, applied: Decimal, total: Decimal) -> dict[str, Any]:
    return {
        "currency": statement.currency,
        "line_items": [line.wire() for line in statement.lines],
        "subtotal": f"{statement.subtotal:f}",
        "credits_applied": f"{applied:f}",
        "total": f"{total:f}",
    }


@dataclass(frozen=True)
class _TenantState:
    removed_at: datetime | None
    earlier_drafts: bool
    usage_recorded_at: datetime | None


async def _locked_tenant(session: AsyncSession, item: InvoiceItem) -> _TenantState:
    """Lock the tenant's row (as quota decisions do) and read, in the same statement, what
    billing `item` depends on that may have changed since `reconcile`."""
    earlier = (
        select(Invoice.id)
        .where(
            Invoice.tenant_id == item.tenant_id,
            Invoice.phase == "Draft",
            Invoice.name < item.name,
        )
        .exists()
    )
    recorded = (
        select(ObservabilityUsage.recorded_at)
        .where(
            ObservabilityUsage.tenant_id == item.tenant_id,
            ObservabilityUsage.period == item.name,
        )
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(Tenant.removed_at, earlier, recorded)
            .where(Tenant.id == item.tenant_id)
            .with_for_update(key_share=True, of=Tenant)
        )
    ).one()
    return _TenantState(row[0], bool(row[1]), row[2])
