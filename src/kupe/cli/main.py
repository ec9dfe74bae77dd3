"""The `kupe` command: server, operator and client commands in one Typer app."""

from __future__ import annotations

import typer

from kupe.cli import (
    alerting,
    apikeys,
    audit,
    auth,
    billing_admin,
    cluster_events,
    clusters,
    config,
    invoices,
    local,
    members,
    plans,
    secrets,
    server,
    tenant,
    webhooks,
)

app = typer.Typer(
    name="kupe",
    help="Kupe: self-hosted managed Kubernetes. Server, operator and client commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
server.register(app)
billing_admin.register()
local.register(app)
# Client commands: they reach a server only through the SDK.
for client_commands in (
    clusters,
    cluster_events,
    apikeys,
    members,
    secrets,
    alerting,
    webhooks,
    audit,
    tenant,
    invoices,
    plans,
    config,
    auth,
):
    client_commands.register(app)


def main() -> None:
    app()
