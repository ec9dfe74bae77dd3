"""`kupe clusters events NAME`: a cluster's timeline, through the SDK."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.table import Table

from kupe.cli.clusters import Name
from kupe.cli.clusters import app as clusters_app
from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import OutputFormat, OutputOpt, age, new_table, show_list, timestamp
from kupe.schemas.event import TimelineEntry


def timeline_table(items: Sequence[TimelineEntry]) -> Table:
    table = new_table("TIME", "AGE", "REASON", "BY", "MESSAGE")
    table.columns[-1].no_wrap = False
    for item in items:
        table.add_row(
            timestamp(item.time), age(item.time), item.reason, item.actor or "", item.message or ""
        )
    return table


def cluster_events(
    name: Name,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show what happened to a cluster: created, running, upgraded, failed, deleted..."""
    with connect(profile, tenant, api_url) as client:
        items = client.clusters.events(name).items
        show_list(items, output, timeline_table, "No events.")


def register(root: typer.Typer) -> None:
    """Add `events` to `kupe clusters` (registered with it: `root` is unused)."""
    clusters_app.command("events")(cluster_events)
