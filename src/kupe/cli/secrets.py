"""`kupe secrets ...`: managed secrets — which OpenBao value goes into which clusters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import RenderableType
from rich.table import Table

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, connect
from kupe.cli.output import (
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    YesOpt,
    confirm,
    details,
    fail,
    new_table,
    note,
    phase_text,
    show,
    show_list,
)
from kupe.schemas.secret import Secret, SyncTarget

app = typer.Typer(
    help="Managed secrets: OpenBao values synced into clusters.", no_args_is_help=True
)

Name = Annotated[str, typer.Argument(help="Managed secret name.")]
Targets = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        help="CLUSTER/NAMESPACE[/SECRET_NAME]; repeat for more (the Secret is named after the "
        "managed secret unless given).",
    ),
]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Wait until every target is synced.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")]


def _parse(targets: list[str] | None) -> list[SyncTarget]:
    parsed = []
    for text in targets or []:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            fail(
                f"--target {text!r}: write CLUSTER/NAMESPACE or CLUSTER/NAMESPACE/SECRET_NAME",
                EXIT_USAGE,
            )
        secret_name = parts[2] if len(parts) == 3 else None
        parsed.append(SyncTarget(cluster=parts[0], namespace=parts[1], secret_name=secret_name))
    return parsed


def secrets_table(items: Sequence[Secret]) -> Table:
    table = new_table("NAME", "PATH", "PHASE", "TARGETS")
    for s in items:
        synced = sum(1 for t in s.status.sync_statuses if t.phase == "Synced")
        table.add_row(
            s.name, s.secret_path, phase_text(s.status.phase), f"{synced}/{len(s.sync or [])}"
        )
    return table


def secret_details(s: Secret) -> RenderableType:
    targets = [
        f"{t.cluster}/{t.namespace}/{t.secret_name}: {t.phase}"
        + (f" (v{t.source_version})" if t.source_version is not None else "")
        + (f" — {t.message}" if t.message and t.phase != "Synced" else "")
        for t in s.status.sync_statuses
    ]
    return details(
        [
            ("Name", s.name),
            ("Path", s.secret_path),
            ("Phase", phase_text(s.status.phase)),
            ("Targets", "\n".join(targets) if targets else "none"),
        ]
    )


@app.command("list")
def list_secrets(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List managed secrets."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.secrets.list(), output, secrets_table, "No managed secrets.")


@app.command("get")
def get_secret(
    name: Name,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show one managed secret and where its copies stand."""
    with connect(profile, tenant, api_url) as client:
        show(client.secrets.get(name), output, secret_details)


@app.command("create")
def create_secret(
    name: Name,
    path: Annotated[str, typer.Option("--path", help="Path in the tenant's OpenBao mount.")],
    target: Targets = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Define a managed secret (admin); --wait until every target holds the value."""
    with connect(profile, tenant, api_url) as client:
        created = client.secrets.create(name, secret_path=path, sync=_parse(target) or None)
        if wait:
            created = client.secrets.wait(name, timeout=timeout)
        show(created, output, secret_details)


@app.command("update")
def update_secret(
    name: Name,
    target: Targets = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Stop syncing; the copies are removed.")
    ] = False,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = 300.0,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Replace every target (admin): the --target options given, or none with --clear."""
    if bool(target) == clear:
        fail("give the targets (--target, repeatable) or --clear, not both", EXIT_USAGE)
    with connect(profile, tenant, api_url) as client:
        updated = client.secrets.update(name, sync=_parse(target))
        if wait:
            updated = client.secrets.wait(name, timeout=timeout)
        show(updated, output, secret_details)


@app.command("delete")
def delete_secret(
    name: Name,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is gone.")] = False,
    timeout: TimeoutOpt = 300.0,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Delete a managed secret (admin): its copies are removed; the OpenBao value stays."""
    confirm(f"Delete managed secret {name} and its copies in clusters?", yes)
    with connect(profile, tenant, api_url) as client:
        client.secrets.delete(name)
        if wait:
            client.secrets.wait_deleted(name, timeout=timeout)
    note(f"Managed secret {name} {'deleted' if wait else 'is being deleted'}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="secrets")
