"""`kupe alerting ...`: the tenant's Alertmanager configuration — receivers, routes and the
global section, read from JSON or YAML files in Alertmanager's own schema. Credentials show as
`"<secret>"`; putting a document back with them unchanged keeps the stored values."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import (
    EXIT_USAGE,
    OutputFormat,
    YesOpt,
    confirm,
    dump,
    fail,
    new_table,
    note,
    render,
)

app = typer.Typer(help="Alerting: where the tenant's alerts go.", no_args_is_help=True)
receivers = typer.Typer(help="Alert receivers (Alertmanager's receiver schema).")
routes = typer.Typer(help="The child routes of the tenant's root route.")
global_ = typer.Typer(help="Alertmanager's global section.")
app.add_typer(receivers, name="receivers", no_args_is_help=True)
app.add_typer(routes, name="routes", no_args_is_help=True)
app.add_typer(global_, name="global", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Receiver name.")]
FileOpt = Annotated[
    str, typer.Option("--file", "-f", help="A JSON or YAML file; - reads standard input.")
]
IfMatchOpt = Annotated[
    str | None, typer.Option("--if-match", help="Write only if the document's ETag is this.")
]
DocumentOutput = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="yaml (default) or json.")
]


def _read(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        return json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        fail(f"{source} is not valid JSON or YAML: {exc}", EXIT_USAGE)


def _object(source: str) -> dict[str, Any]:
    data = _read(source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        fail(f"{source} must hold an object", EXIT_USAGE)
    return data


def _show(body: Any, fmt: OutputFormat) -> None:
    dump(body, OutputFormat.json if fmt is OutputFormat.json else OutputFormat.yaml)


@receivers.command("list")
def list_receivers(
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table, json or yaml.")
    ] = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List the receivers and their integrations."""
    with connect(profile, tenant, api_url) as client:
        items = client.alerting.receivers()
    if output is not OutputFormat.table:
        dump({"items": items}, output)
        return
    if not items:
        note("No receivers.")
        return
    table = new_table("NAME", "INTEGRATIONS")
    for item in items:
        kinds = sorted(k.removesuffix("_configs") for k in item if k.endswith("_configs"))
        table.add_row(str(item.get("name")), ", ".join(kinds) or "-")
    render(table)


@receivers.command("get")
def get_receiver(
    name: Name,
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show one receiver (credentials masked)."""
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.get_receiver(name).body, output)


@receivers.command("put")
def put_receiver(
    name: Name,
    file: FileOpt,
    if_match: IfMatchOpt = None,
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Create or replace a receiver (admin); Alertmanager checks it before it is stored."""
    body = _object(file)
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.put_receiver(name, body, if_match=if_match).body, output)


@receivers.command("delete")
def delete_receiver(
    name: Name,
    yes: YesOpt = False,
    if_match: IfMatchOpt = None,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Delete a receiver (admin); refused while a route names it."""
    confirm(f"Delete receiver {name}?", yes)
    with connect(profile, tenant, api_url) as client:
        client.alerting.delete_receiver(name, if_match=if_match)
    note(f"Receiver {name} deleted")


@routes.command("get")
def get_routes(
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show the child routes ({"items": [...]})."""
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.get_routes().body, output)


@routes.command("put")
def put_routes(
    file: FileOpt,
    if_match: IfMatchOpt = None,
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Replace the child routes (admin): a list, or {"items": [...]}; an empty file clears."""
    data = _read(file)
    if isinstance(data, dict) and set(data) == {"items"}:
        data = data["items"]
    if data is not None and not isinstance(data, list):
        fail(f"{file} must hold a list of routes (or {{items: [...]}})", EXIT_USAGE)
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.put_routes(data, if_match=if_match).body, output)


@global_.command("get")
def get_global(
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show the global section (credentials masked)."""
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.get_global().body, output)


@global_.command("put")
def put_global(
    file: FileOpt,
    if_match: IfMatchOpt = None,
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Replace the global section (admin); an empty object clears it."""
    body = _object(file)
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.put_global(body, if_match=if_match).body, output)


@app.command("config")
def show_config(
    output: DocumentOutput = OutputFormat.yaml,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show the effective configuration Kupe renders for the tenant (credentials masked)."""
    with connect(profile, tenant, api_url) as client:
        _show(client.alerting.config().body, output)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alerting")
