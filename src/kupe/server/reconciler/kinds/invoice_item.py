"""A draft invoice as the reconciler reads it, and the statements that lease and load it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select

from kupe.server.db.leases import Leases, Loader
from kupe.server.db.models import Invoice, Tenant


@dataclass(frozen=True)
class InvoiceItem:
    id: str
    tenant_id: str
    tenant: str
    name: str
    period_end: datetime
    # When it was due as claimed: a ledger change meanwhile moves it (see Ledger.touch).
    next_reconcile_at: datetime
    enforce_metrics_limit: bool
    enforce_log_limit: bool
    failure_count: int
    resource_version: int
    lease: str


_I = cast(Table, Invoice.__table__).c


def _tenant(column: Any) -> Any:
    return select(column).where(Tenant.id == Invoice.tenant_id).scalar_subquery()


_COLUMNS = (
    _I.id,
    _I.tenant_id,
    _tenant(Tenant.name),
    _I.name,
    _I.period_end,
    _I.next_reconcile_at,
    _tenant(Tenant.enforce_metrics_limit),
    _tenant(Tenant.enforce_log_limit),
    _I.failure_count,
    _I.resource_version,
)


def _make(row: Sequence[Any], lease: str) -> InvoiceItem:
    (
        invoice_id,
        tenant_id,
        tenant,
        name,
        period_end,
        next_reconcile_at,
        enforce_metrics,
        enforce_logs,
        failure_count,
        resource_version,
    ) = row
    return InvoiceItem(
        id=invoice_id,
        tenant_id=tenant_id,
        tenant=tenant,
        name=name,
        period_end=period_end,
        next_reconcile_at=next_reconcile_at,
        enforce_metrics_limit=bool(enforce_metrics),
        enforce_log_limit=bool(enforce_logs),
        failure_count=failure_count,
        resource_version=resource_version,
        lease=lease,
    )


INVOICE_LEASES: Leases[InvoiceItem] = Leases(
    Invoice, Loader(_COLUMNS, _make), live=(Invoice.phase == "Draft",)
)
