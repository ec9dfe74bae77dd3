"""`kupe webhooks ...`: where a tenant's events are POSTed, signed, and how deliveries went."""

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
    YesOpt,
    confirm,
    details,
    new_table,
    note,
    show,
    show_list,
    timestamp,
)
from kupe.schemas.webhook import EVENT_TYPES, Webhook, WebhookCreated, WebhookDelivery

app = typer.Typer(help="Webhooks: signed POSTs of the tenant's events.", no_args_is_help=True)

HookId = Annotated[str, typer.Argument(help="Webhook id (wh-...).")]


def _state(hook: Webhook) -> str:
    if hook.status.disabled:
        return "disabled"
    return "failing" if hook.status.failing_since else "active"


def webhooks_table(items: Sequence[Webhook]) -> Table:
    table = new_table("ID", "URL", "EVENTS", "STATE")
    for hook in items:
        table.add_row(hook.id, hook.url, ", ".join(hook.events), _state(hook))
    return table


def created_details(hook: WebhookCreated) -> RenderableType:
    return details(
        [
            ("ID", hook.id),
            ("URL", hook.url),
            ("Events", ", ".join(hook.events)),
            ("Secret", hook.secret),
        ]
    )


def deliveries_table(items: Sequence[WebhookDelivery]) -> Table:
    table = new_table("TIME", "EVENT", "TYPE", "ATTEMPT", "RESULT", "MS", "NEXT RETRY")
    for d in items:
        result = str(d.status_code) if d.status_code is not None else (d.error or "")
        table.add_row(
            timestamp(d.time) or "",
            d.event_id,
            d.event_type,
            str(d.attempt),
            result if not d.delivered else f"{result} delivered",
            str(d.duration_ms),
            timestamp(d.next_retry_at) or "",
        )
    return table


@app.command("list")
def list_webhooks(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List webhooks (admin; never their secrets)."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.webhooks.list(), output, webhooks_table, "No webhooks.")


@app.command("create")
def create_webhook(
    url: Annotated[str, typer.Argument(help="https:// URL the events are POSTed to.")],
    event: Annotated[
        list[str],
        typer.Option(
            "--event",
            help=f"Event type to deliver; repeat for more. '*' is all, 'cluster.*' all of a "
            f"kind. Types: {', '.join(EVENT_TYPES)}.",
        ),
    ],
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="KUPE_WEBHOOK_SECRET",
            help="Signing secret (default: generated and printed once).",
        ),
    ] = None,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Create a webhook (admin); the signing secret is printed this once only."""
    with connect(profile, tenant, api_url) as client:
        created = client.webhooks.create(url, events=event, secret=secret)
    show(created, output, created_details)
    if output is OutputFormat.table:
        note("Store the secret now: it cannot be shown again.")


@app.command("delete")
def delete_webhook(
    hook: HookId,
    yes: YesOpt = False,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Delete a webhook and its delivery history (admin)."""
    confirm(f"Delete webhook {hook}?", yes)
    with connect(profile, tenant, api_url) as client:
        client.webhooks.delete(hook)
    note(f"Webhook {hook} deleted")


@app.command("deliveries")
def list_deliveries(
    hook: HookId,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """A webhook's delivery attempts, newest first."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.webhooks.deliveries(hook), output, deliveries_table, "No deliveries yet.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="webhooks")
