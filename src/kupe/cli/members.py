"""`kupe members ...`: who may use the tenant, and with which role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.table import Table

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import (
    OutputFormat,
    OutputOpt,
    RoleChoice,
    YesOpt,
    confirm,
    details,
    new_table,
    note,
    show,
    show_list,
)
from kupe.schemas.tenant import MemberView

app = typer.Typer(help="Tenant members and their roles.", no_args_is_help=True)

Email = Annotated[str, typer.Argument(help="Member email.")]


Role = Annotated[RoleChoice, typer.Option(help="admin or readonly.")]


def members_table(items: Sequence[MemberView]) -> Table:
    table = new_table("EMAIL", "ROLE")
    for m in items:
        table.add_row(m.email, m.role)
    return table


def member_details(m: MemberView) -> RenderableType:
    return details([("Email", m.email), ("Role", m.role)])


@app.command("list")
def list_members(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List members."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.members.list(), output, members_table, "No members.")


@app.command("add")
def add_member(
    email: Email,
    role: Role,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Add a member (admin)."""
    with connect(profile, tenant, api_url) as client:
        show(client.members.add(email, role=role.value), output, member_details)


@app.command("update")
def update_member(
    email: Email,
    role: Role,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Change a member's role (admin)."""
    with connect(profile, tenant, api_url) as client:
        show(client.members.update(email, role=role.value), output, member_details)


@app.command("remove")
def remove_member(
    email: Email,
    yes: YesOpt = False,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Remove a member (admin); not yourself, and not the last admin."""
    confirm(f"Remove member {email}?", yes)
    with connect(profile, tenant, api_url) as client:
        client.members.remove(email)
    note(f"Member {email} removed")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="members")
