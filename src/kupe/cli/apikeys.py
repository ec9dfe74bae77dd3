"""`kupe apikeys ...`: issue, list and revoke the tenant's API keys (admin)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
    age,
    confirm,
    details,
    new_table,
    note,
    show,
    show_list,
    timestamp,
)
from kupe.schemas.apikey import ApiKey, ApiKeyCreated

app = typer.Typer(help="API keys for scripts and CI (admin only).", no_args_is_help=True)


def apikeys_table(items: Sequence[ApiKey]) -> Table:
    table = new_table("ID", "DISPLAY NAME", "ROLE", "CREATED BY", "AGE", "EXPIRES", "LAST USED")
    for k in items:
        table.add_row(
            k.id,
            k.display_name,
            k.role,
            k.created_by,
            age(k.created_at),
            timestamp(k.expires_at) or "never",
            timestamp(k.last_used_at) or "-",
        )
    return table


def created_details(k: ApiKeyCreated) -> RenderableType:
    return details(
        [
            ("ID", k.id),
            ("Display name", k.display_name),
            ("Role", k.role),
            ("Expires", timestamp(k.expires_at) or "never"),
            ("Key", k.key),
        ]
    )


@app.command("list")
def list_apikeys(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List API keys (never the keys themselves)."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.apikeys.list(), output, apikeys_table, "No API keys.")


@app.command("create")
def create_apikey(
    display_name: Annotated[str, typer.Option("--display-name", help="What the key is for.")],
    role: Annotated[RoleChoice, typer.Option(help="admin or readonly.")],
    expires_at: Annotated[
        datetime | None,
        typer.Option(
            "--expires-at",
            help="When it stops working (UTC unless an offset is given).",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Issue a key; the raw key is printed this once only."""
    with connect(profile, tenant, api_url) as client:
        created = client.apikeys.create(
            display_name=display_name, role=role.value, expires_at=expires_at
        )
    show(created, output, created_details)
    if output is OutputFormat.table:
        note("Store the key now: it cannot be shown again.")


@app.command("delete")
def delete_apikey(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="Key id, ak-...")],
    yes: YesOpt = False,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Revoke a key; it stops working at once."""
    confirm(f"Revoke API key {key_id}?", yes)
    with connect(profile, tenant, api_url) as client:
        client.apikeys.delete(key_id)
    note(f"API key {key_id} revoked")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="apikeys")
