"""`kupe plans ...`: the public plan catalogue."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.table import Table

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, connect
from kupe.cli.output import OutputFormat, OutputOpt, details, new_table, show, show_list
from kupe.core.unlimited import count_is_unlimited, quantity_is_unlimited
from kupe.schemas.plan import Plan, ResourceAmounts

app = typer.Typer(help="The plan catalogue (no credentials needed).", no_args_is_help=True)


def _amounts(amounts: ResourceAmounts | None) -> str:
    if amounts is None or quantity_is_unlimited(amounts.cpu):
        return "unlimited"
    return f"{amounts.cpu} cpu / {amounts.memory} / {amounts.storage}"


def _limit(value: int | None) -> str:
    return "unlimited" if count_is_unlimited(value) else str(value)


def plans_table(items: Sequence[Plan]) -> Table:
    table = new_table("NAME", "DISPLAY NAME", "FEE (GBP/month)", "CLUSTERS", "POOL", "DEDICATED")
    for p in items:
        table.add_row(
            p.name,
            p.display_name,
            p.platform_fee,
            _limit(p.max_clusters),
            _amounts(p.resource_pool),
            "yes" if p.dedicated_clusters else "no",
        )
    return table


def plan_details(p: Plan) -> RenderableType:
    obs = p.observability_pool
    return details(
        [
            ("Name", p.name),
            ("Display name", p.display_name),
            ("Platform fee", f"£{p.platform_fee} per month"),
            ("Max clusters", _limit(p.max_clusters)),
            ("Resource pool", _amounts(p.resource_pool)),
            ("Default cluster", _amounts(p.default_cluster_resources)),
            ("Dedicated clusters", "yes" if p.dedicated_clusters else "no"),
            ("Active series", _limit(obs.max_active_series)),
            ("Log ingest (GB)", _limit(obs.log_ingest_gb)),
            ("Retention (days)", _limit(obs.retention_days)),
            ("Alert receivers", _limit(obs.max_receivers)),
        ]
    )


@app.command("list")
def list_plans(
    output: OutputOpt = OutputFormat.table, profile: ProfileOpt = None, api_url: ApiUrlOpt = None
) -> None:
    """List the plans on offer."""
    with connect(profile, None, api_url) as client:
        show_list(client.plans.list(), output, plans_table, "No plans.")


@app.command("get")
def get_plan(
    name: Annotated[str, typer.Argument(help="Plan name, e.g. pro.")],
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show one plan's limits and prices."""
    with connect(profile, None, api_url) as client:
        show(client.plans.get(name), output, plan_details)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="plans")
