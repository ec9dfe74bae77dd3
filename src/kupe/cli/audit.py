"""`kupe audit list`: who did what to the tenant (admin), newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import OutputFormat, OutputOpt, new_table, show_list, timestamp
from kupe.schemas.audit import AuditEntry

app = typer.Typer(help="The tenant's audit log (admin).", no_args_is_help=True)
_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def audit_table(items: Sequence[AuditEntry]) -> Table:
    table = new_table("TIME", "ACTOR", "METHOD", "TARGET", "STATUS", "CLIENT IP", "REQUEST ID")
    for e in items:
        table.add_row(
            timestamp(e.time) or "",
            e.actor,
            e.method,
            e.target or "",
            str(e.status),
            e.client_ip,
            e.request_id,
        )
    return table


@app.command("list")
def list_audit(
    actor: Annotated[
        str | None, typer.Option("--actor", help="Only this actor (email or apikey:<id>).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Only requests on this, e.g. clusters/web.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            "--since", help="From this time (UTC unless an offset is given).", formats=_FORMATS
        ),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(
            "--until", help="Before this time (UTC unless an offset is given).", formats=_FORMATS
        ),
    ] = None,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Every mutating request of the tenant's callers, accepted or refused, newest first."""
    with connect(profile, tenant, api_url) as client:
        entries = client.audit.list(actor=actor, target=target, since=since, until=until)
        show_list(entries, output, audit_table, "No audit entries.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audit")
