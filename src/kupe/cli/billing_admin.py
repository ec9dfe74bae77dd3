"""The operator's billing commands: `kupe admin record-usage`, `grant-credit` and
`invoices mark-paid|mark-past-due|cancel|list` (direct database access, like every
`kupe admin` command)."""

from __future__ import annotations

from typing import Annotated

import typer

from kupe.cli.server import TenantArg, _admin, admin_app

invoices_app = typer.Typer(
    help="Invoices: the operator sets phases until a payment processor is integrated.",
    no_args_is_help=True,
)
InvoiceArg = Annotated[str, typer.Argument(help="The invoice's month, YYYY-MM.")]


@admin_app.command("record-usage")
def record_usage(
    tenant: TenantArg,
    metrics_series: Annotated[
        int, typer.Option("--metrics-series", min=0, help="P95 active metrics series.")
    ],
    logs_gb: Annotated[str, typer.Option("--logs-gb", help="GB of logs ingested.")],
    month: Annotated[
        str | None, typer.Option("--month", help="YYYY-MM; default: the current month.")
    ] = None,
) -> None:
    """Record a tenant's observability usage for a month (replaces what was recorded)."""
    _admin(lambda admin: admin.record_usage(tenant, metrics_series, logs_gb, month))


@admin_app.command("grant-credit")
def grant_credit(
    tenant: TenantArg,
    amount: Annotated[str, typer.Argument(help="Amount in the invoice currency, e.g. 25.00.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the credit).")],
) -> None:
    """Grant a credit: applied to the next invoices up to their subtotal, the rest carried
    forward. Credits never raise limits."""
    _admin(lambda admin: admin.grant_credit(tenant, amount, reason))


@invoices_app.command("list")
def list_invoices(tenant: TenantArg) -> None:
    """A tenant's invoices, oldest month first."""
    _admin(lambda admin: admin.list_invoices(tenant))


@invoices_app.command("mark-paid")
def mark_paid(tenant: TenantArg, name: InvoiceArg) -> None:
    """Billed or PastDue -> Paid."""
    _admin(lambda admin: admin.set_invoice_phase(tenant, name, "Paid"))


@invoices_app.command("mark-past-due")
def mark_past_due(tenant: TenantArg, name: InvoiceArg) -> None:
    """Billed -> PastDue."""
    _admin(lambda admin: admin.set_invoice_phase(tenant, name, "PastDue"))


@invoices_app.command("cancel")
def cancel(tenant: TenantArg, name: InvoiceArg) -> None:
    """Billed or PastDue -> Canceled (its credits return to the tenant's balance)."""
    _admin(lambda admin: admin.set_invoice_phase(tenant, name, "Canceled"))


def register() -> None:
    """Add the commands to `kupe admin` (the record-usage and grant-credit commands are
    added when this module is imported)."""
    admin_app.add_typer(invoices_app, name="invoices")
