"""Statements from the ledger: load what one tenant's month is computed from, compute it, and
turn it into an invoice's status or the running estimate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock, rfc3339
from kupe.server.billing.rates import Month, PlanTerms, Rates
from kupe.server.billing.statement import (
    Interval,
    Observability,
    PlanSpan,
    Statement,
    apply_credits,
    compute,
)
from kupe.server.db.engine import Database
from kupe.server.db.models import BillingRates
from kupe.server.db.repositories.billing import (
    CreditRepository,
    ObservabilityRepository,
    RatesRepository,
    draft_values,
    insert_draft,
    tenants_without_invoice,
)
from kupe.server.db.repositories.ledger import Ledger

# How far replicas' clocks may disagree, and how long rates read for an estimate are reused.
CLOCK_SKEW = timedelta(seconds=60)
CACHE_FOR = timedelta(seconds=60)


@dataclass(frozen=True)
class TenantTerms:
    """What of a tenant its statement depends on besides the ledger."""

    id: str
    enforce_metrics_limit: bool
    enforce_log_limit: bool


def rates_of(row: BillingRates) -> Rates:
    return Rates(
        effective_from=row.effective_from,
        currency=row.currency,
        cpu_core_hour=Decimal(row.cpu_core_hour),
        memory_gib_hour=Decimal(row.memory_gib_hour),
        storage_gib_hour=Decimal(row.storage_gib_hour),
        metrics_series_month=Decimal(row.metrics_series_month),
        logs_gb=Decimal(row.logs_gb),
    )


async def seed_rates(session: AsyncSession, configured: Rates) -> bool:
    """Record the configured rates as a new version from their `effective_from` unless they
    are the version in force already; earlier time keeps the rates it had. Returns whether a
    version was added."""
    repo = RatesRepository(session)
    latest = await repo.latest()
    if latest is not None and rates_of(latest).same_prices(configured):
        return False
    if latest is not None and latest.effective_from >= configured.effective_from:
        return False  # never rewrite what is already in force (a clock behind the last start)
    repo.add(
        BillingRates(
            effective_from=configured.effective_from,
            currency=configured.currency,
            cpu_core_hour=f"{configured.cpu_core_hour:f}",
            memory_gib_hour=f"{configured.memory_gib_hour:f}",
            storage_gib_hour=f"{configured.storage_gib_hour:f}",
            metrics_series_month=f"{configured.metrics_series_month:f}",
            logs_gb=f"{configured.logs_gb:f}",
        )
    )
    await session.flush()
    return True


class Billing:
    """Computes statements; `terms` are the plans' fees and allowances by name, and `default`
    the rates used before any version was recorded."""

    def __init__(self, terms: Mapping[str, PlanTerms], default: Rates, clock: Clock) -> None:
        self.terms = dict(terms)
        self.default = default
        self.clock = clock
        # The versions as last read, and when (by the clock).
        self._versions: tuple[datetime, list[Rates]] | None = None

    async def versions(self, session: AsyncSession, until: datetime) -> list[Rates]:
        """The rates versions that cover time before `until`. A version is recorded when a
        process starts, effective from then, so versions read at T cover everything before T
        (less some clock skew between replicas): read again only when the last read is not
        complete for `until`, or is a minute old."""
        now = self.clock.now()
        cached = self._versions
        if cached is not None:
            read_at, versions = cached
            if read_at - until >= CLOCK_SKEW or now - read_at < CACHE_FOR:
                return versions
        versions = [rates_of(row) for row in await RatesRepository(session).all()]
        versions = versions or [self.default]
        self._versions = (now, versions)
        return versions

    def forget_versions(self) -> None:
        self._versions = None

    async def statement(
        self,
        session: AsyncSession,
        tenant: TenantTerms,
        month: Month,
        until: datetime,
        *,
        since: datetime | None = None,
    ) -> Statement:
        ledger = Ledger(session)
        end = min(until, month.end)
        start = month.start if since is None else max(month.start, since)
        versions = await self.versions(session, end)
        intervals = [
            Interval(r.started_at, r.ended_at, r.cpu_millis, r.memory_bytes, r.storage_bytes)
            for r in await ledger.intervals(tenant.id, start, end)
        ]
        plans = [
            PlanSpan(r.plan, self._fee(r.plan, r.platform_fee), r.started_at, r.ended_at)
            for r in await ledger.plans(tenant.id, start, end)
        ]
        used = await ObservabilityRepository(session, tenant.id).get(month.name)
        usage = Observability(used.metrics_series, Decimal(used.logs_gb)) if used else None
        statement = compute(
            month,
            end,
            intervals=intervals,
            plans=plans,
            versions=versions,
            terms=self.terms.get,
            usage=usage,
            enforce_metrics=tenant.enforce_metrics_limit,
            enforce_logs=tenant.enforce_log_limit,
            since=since,
        )
        return replace(statement, usage_recorded_at=used.recorded_at if used else None)

    def _fee(self, plan: str, recorded: str | None) -> Decimal:
        if recorded is not None:
            return Decimal(recorded)
        terms = self.terms.get(plan)
        return terms.platform_fee if terms else Decimal(0)

    @staticmethod
    async def credit_balance(session: AsyncSession, tenant_id: str) -> Decimal:
        """Credits granted and not yet spent on billed invoices (one statement)."""
        return await CreditRepository(session, tenant_id).balance()


def estimate_document(
    month: Month, statement: Statement, credits_applied: Decimal, total: Decimal
) -> dict[str, Any]:
    """tenant.status.currentUsage as stored with the draft (without updatedAt and stale,
    which the read adds)."""
    return {
        "periodStart": rfc3339(month.start),
        "periodEnd": rfc3339(month.end),
        "currency": statement.currency,
        "compute": statement.compute_summary(),
        "observability": statement.observability,
        "estimatedSubtotal": f"{statement.subtotal:f}",
        "estimatedCreditsApplied": f"{credits_applied:f}",
        "estimatedTotal": f"{total:f}",
    }


def settle(statement: Statement, balance: Decimal) -> tuple[Decimal, Decimal]:
    """(credits applied, total) of a statement given the tenant's credit balance."""
    return apply_credits(statement.subtotal, balance)


async def ensure_draft(
    session: AsyncSession, db: Database, tenant_id: str, month: Month, now: datetime
) -> bool:
    """The tenant's draft invoice for `month`, created unless it exists."""
    values = draft_values(
        tenant_id,
        month.name,
        month.start,
        month.end,
        currency=await RatesRepository(session).currency(),
        resource_version=await db.next_resource_version(session),
        now=now,
    )
    return await insert_draft(session, values)


async def ensure_drafts(db: Database, month: Month, now: datetime) -> int:
    """Every tenant's draft for `month` (at start-up: tenants from before billing, or a month
    that began while no reconciler ran). Returns how many were created."""
    async with db.write() as session:
        missing = await tenants_without_invoice(session, month.name, month.end)
        if not missing:
            return 0
        versions = await db.next_resource_versions(session, len(missing))
        currency = await RatesRepository(session).currency()
        created = 0
        for tenant_id, version in zip(missing, versions, strict=True):
            values = draft_values(
                tenant_id,
                month.name,
                month.start,
                month.end,
                currency=currency,
                resource_version=version,
                now=now,
            )
            created += await insert_draft(session, values)
        return created
