"""`kupe invoices list|get` and `kupe tenant usage`: what the tenant is billed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import OutputFormat, OutputOpt, details, new_table, show, show_list, timestamp
from kupe.schemas.billing import CurrentUsage, Invoice

app = typer.Typer(help="The tenant's monthly invoices.", no_args_is_help=True)
Name = Annotated[str, typer.Argument(help="The invoice's month, YYYY-MM.")]


def invoices_table(items: Sequence[Invoice]) -> Table:
    table = new_table("NAME", "PHASE", "SUBTOTAL", "CREDITS", "TOTAL", "CURRENCY")
    for i in items:
        s = i.status
        table.add_row(i.name, s.phase, s.subtotal, s.credits_applied, s.total, s.currency)
    return table


def invoice_details(i: Invoice) -> RenderableType:
    s = i.status
    head = details(
        [
            ("Invoice", i.name),
            ("Phase", s.phase + (" (running estimate)" if s.phase == "Draft" else "")),
            ("Period", f"{timestamp(i.billing_period.start)} - {timestamp(i.billing_period.end)}"),
            ("Subtotal", f"{s.subtotal} {s.currency}"),
            ("Credits applied", f"{s.credits_applied} {s.currency}"),
            ("Total", f"{s.total} {s.currency}"),
        ]
    )
    lines = new_table("KIND", "DESCRIPTION", "QUANTITY", "UNIT", "UNIT PRICE", "COST")
    for line in s.line_items:
        lines.add_row(
            line.kind, line.description, line.quantity, line.unit, line.unit_price, line.cost
        )
    return Group(head, Text(""), lines)


def usage_details(u: CurrentUsage) -> RenderableType:
    c, o = u.compute, u.observability
    rows: list[tuple[str, str | None]] = [
        ("Period", f"{timestamp(u.period_start)} - {timestamp(u.period_end)}"),
        ("Currency", u.currency),
    ]
    if c is not None:
        rows += [
            ("CPU", f"{c.cpu_core_hours} vCPU-hours, {c.cpu_cost}"),
            ("Memory", f"{c.memory_gib_hours} GiB-hours, {c.memory_cost}"),
            ("Storage", f"{c.storage_gib_hours} GiB-hours, {c.storage_cost}"),
        ]
    if o is not None:
        rows += [
            ("Metrics", f"{o.metrics_active_series} series, overage {o.metrics_overage_cost}"),
            ("Logs", f"{o.logs_gb} GB, overage {o.logs_overage_cost}"),
        ]
    rows += [
        ("Subtotal", u.estimated_subtotal),
        ("Credits applied", u.estimated_credits_applied),
        ("Estimated total", u.estimated_total),
        ("Updated", timestamp(u.updated_at) if u.updated_at else None),
        ("Stale", f"yes: {u.error}" if u.stale else "no"),
    ]
    return details(rows)


@app.command("list")
def list_invoices(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List the tenant's invoices, oldest month first."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.invoices.list(), output, invoices_table, "No invoices.")


@app.command("get")
def get_invoice(
    name: Name,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show one month's invoice with its line items."""
    with connect(profile, tenant, api_url) as client:
        show(client.invoices.get(name), output, invoice_details)


def usage(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """This month's running estimate (tenant.status.currentUsage)."""
    with connect(profile, tenant, api_url) as client:
        show(client.invoices.usage(), output, usage_details)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="invoices")
