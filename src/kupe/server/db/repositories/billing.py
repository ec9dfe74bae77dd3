"""Invoices, credits, observability usage and the versioned rates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.models import BillingRates, Credit, Invoice, ObservabilityUsage, Tenant
from kupe.server.db.repositories.base import Repository, TenantScoped

# Phases whose credits are spent: a canceled invoice gives its credits back.
CREDITED_PHASES = ("Billed", "Paid", "PastDue")
DEFAULT_CURRENCY = "GBP"


class RatesRepository(Repository):
    async def all(self) -> Sequence[BillingRates]:
        stmt = select(BillingRates).order_by(BillingRates.effective_from)
        return (await self.session.scalars(stmt)).all()

    async def latest(self) -> BillingRates | None:
        stmt = select(BillingRates).order_by(BillingRates.effective_from.desc()).limit(1)
        return (await self.session.scalars(stmt)).first()

    def add(self, row: BillingRates) -> None:
        self.session.add(row)

    async def currency(self) -> str:
        latest = await self.latest()
        return latest.currency if latest is not None else DEFAULT_CURRENCY


class InvoiceRepository(TenantScoped):
    async def list(self) -> Sequence[Invoice]:
        stmt = select(Invoice).where(Invoice.tenant_id == self.tenant_id).order_by(Invoice.name)
        return (await self.session.scalars(stmt)).all()

    async def get(self, name: str) -> Invoice | None:
        stmt = select(Invoice).where(Invoice.tenant_id == self.tenant_id, Invoice.name == name)
        return (await self.session.scalars(stmt)).one_or_none()

    async def latest_version(self) -> int:
        stmt = select(func.max(Invoice.resource_version)).where(Invoice.tenant_id == self.tenant_id)
        return int(await self.session.scalar(stmt) or 0)

    async def earlier_drafts(self, name: str) -> int:
        stmt = select(func.count()).where(
            Invoice.tenant_id == self.tenant_id, Invoice.phase == "Draft", Invoice.name < name
        )
        return int(await self.session.scalar(stmt) or 0)


def draft_values(
    tenant_id: str,
    name: str,
    start: datetime,
    end: datetime,
    *,
    currency: str,
    resource_version: int,
    now: datetime,
) -> dict[str, Any]:
    """A new Draft invoice, due for its first estimate now."""
    return {
        "id": uuid.uuid4().hex,
        "tenant_id": tenant_id,
        "name": name,
        "period_start": start,
        "period_end": end,
        "phase": "Draft",
        "currency": currency,
        "line_items": [],
        "subtotal": "0.00",
        "credits_applied": "0.00",
        "total": "0.00",
        "estimate": None,
        "estimated_at": None,
        "created_at": now,
        "billed_at": None,
        "resource_version": resource_version,
        "next_reconcile_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "failure_count": 0,
    }


async def tenants_without_invoice(session: AsyncSession, name: str, end: datetime) -> list[str]:
    """Tenants that existed before `end` and were not removed by then, without invoice `name`."""
    has = select(Invoice.id).where(Invoice.tenant_id == Tenant.id, Invoice.name == name)
    stmt = select(Tenant.id).where(
        Tenant.created_at < end,
        (Tenant.removed_at.is_(None)) | (Tenant.removed_at > end),
        ~has.exists(),
    )
    return list((await session.scalars(stmt)).all())


class CreditRepository(TenantScoped):
    async def balance(self) -> Decimal:
        """Granted less what billed invoices applied, read in one statement."""
        granted = select(Credit.amount, literal(1)).where(Credit.tenant_id == self.tenant_id)
        spent = select(Invoice.credits_applied, literal(-1)).where(
            Invoice.tenant_id == self.tenant_id, Invoice.phase.in_(CREDITED_PHASES)
        )
        rows = (await self.session.execute(granted.union_all(spent))).all()
        return sum((Decimal(amount) * sign for amount, sign in rows), Decimal(0))

    def add(self, credit: Credit) -> None:
        self.session.add(credit)


class ObservabilityRepository(TenantScoped):
    async def get(self, period: str) -> ObservabilityUsage | None:
        return await self.session.get(ObservabilityUsage, (self.tenant_id, period))

    async def put(self, period: str, series: int, logs_gb: Decimal, at: datetime) -> None:
        row = await self.get(period)
        if row is None:
            self.session.add(
                ObservabilityUsage(
                    tenant_id=self.tenant_id,
                    period=period,
                    metrics_series=series,
                    logs_gb=f"{logs_gb:f}",
                    recorded_at=at,
                )
            )
        else:
            row.metrics_series = series
            row.logs_gb = f"{logs_gb:f}"
            row.recorded_at = at
        await self.session.flush()


async def insert_draft(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a draft unless the tenant has that invoice already (ON CONFLICT DO NOTHING: a
    lost race never fails the surrounding transaction). Returns whether it was inserted."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    statement = (
        insert(Invoice)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
