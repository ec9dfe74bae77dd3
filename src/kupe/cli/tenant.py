"""`kupe tenant get|update`: the tenant, its plan and usage."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.text import Text

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.invoices import usage
from kupe.cli.output import (
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    details,
    fail,
    new_table,
    phase_text,
    show,
    timestamp,
)
from kupe.core.unlimited import quantity_is_unlimited
from kupe.schemas.plan import ResourceAmounts
from kupe.schemas.tenant import Tenant

app = typer.Typer(help="The tenant: plan, members, usage.", no_args_is_help=True)


def _amounts(amounts: ResourceAmounts | None) -> str | None:
    if amounts is None or quantity_is_unlimited(amounts.cpu):
        return None
    return f"cpu {amounts.cpu}, memory {amounts.memory}, storage {amounts.storage}"


def tenant_details(t: Tenant) -> RenderableType:
    usage = t.status.current_usage
    total = usage.estimated_total if usage is not None else None
    view = details(
        [
            ("Name", t.name),
            ("Display name", t.display_name),
            ("Contact", t.contact_email),
            ("Plan", t.plan),
            ("Phase", phase_text(t.status.phase)),
            ("Clusters", None if t.status.cluster_count is None else str(t.status.cluster_count)),
            ("Allocated", _amounts(t.status.allocated_resources)),
            ("Pool", _amounts(t.status.pool_resources) or "unlimited"),
            ("This month", f"£{total} (estimate)" if total is not None else None),
            ("Enforce metrics limit", "yes" if t.enforce_metrics_limit else "no"),
            ("Enforce log limit", "yes" if t.enforce_log_limit else "no"),
            ("Created", timestamp(t.created_at)),
            ("Resource version", t.resource_version),
        ]
    )
    if not t.members:
        return view
    members = new_table("EMAIL", "ROLE")
    for m in t.members:
        members.add_row(m.email, m.role)
    return Group(view, Text(""), Text("Members:", style="bold"), members)


@app.command("get")
def get_tenant(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show the tenant."""
    with connect(profile, tenant, api_url) as client:
        show(client.tenant.get(), output, tenant_details)


@app.command("update")
def update_tenant(
    plan: Annotated[str | None, typer.Option(help="Move to this plan.")] = None,
    enforce_metrics_limit: Annotated[
        bool | None,
        typer.Option(
            "--enforce-metrics-limit/--no-enforce-metrics-limit",
            help="Drop metrics beyond the plan's series limit.",
            show_default=False,
        ),
    ] = None,
    enforce_log_limit: Annotated[
        bool | None,
        typer.Option(
            "--enforce-log-limit/--no-enforce-log-limit",
            help="Drop logs beyond the plan's ingest limit.",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Change the plan or limit enforcement (admin)."""
    if plan is None and enforce_metrics_limit is None and enforce_log_limit is None:
        fail("nothing to update: give --plan or an --enforce-... option", EXIT_USAGE)
    with connect(profile, tenant, api_url) as client:
        updated = client.tenant.update(
            plan=plan,
            enforce_metrics_limit=enforce_metrics_limit,
            enforce_log_limit=enforce_log_limit,
        )
        show(updated, output, tenant_details)


app.command("usage")(usage)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="tenant")
