"""Connection options shared by the client commands, and the SDK client they build."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from kupe.cli.output import errors_reported
from kupe.sdk import Client, RetryPolicy, current_profile
from kupe.sdk.client import DEFAULT_TIMEOUT

PANEL = "Connection"

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Profile from config.toml (default: KUPE_PROFILE, else the current profile).",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option(
        "--tenant",
        "-t",
        help="Tenant (default: KUPE_TENANT, else the profile's).",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]
ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="API base URL (default: KUPE_API_URL, else the profile's, else http://127.0.0.1:8080).",
        rich_help_panel=PANEL,
        show_default=False,
    ),
]


def build_client(
    profile: str | None, tenant: str | None, api_url: str | None, *, retries: bool = True
) -> Client:
    """The SDK client for these options: flags, then environment, then the profile."""
    return Client(
        api_url=api_url,
        tenant=tenant,
        profile=profile or current_profile(),
        retry=None if retries else RetryPolicy(max_retries=0),
        # Completion runs while the user waits at the prompt: fail fast rather than hang.
        timeout=DEFAULT_TIMEOUT if retries else 3.0,
    )


@contextmanager
def connect(profile: str | None, tenant: str | None, api_url: str | None) -> Iterator[Client]:
    """A client for one command; SDK errors become a message and an exit code."""
    with errors_reported(), build_client(profile, tenant, api_url) as client:
        yield client


def complete_cluster(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of cluster names, asked of the API (silent when it cannot answer)."""
    params = ctx.params
    try:
        with build_client(
            params.get("profile"), params.get("tenant"), params.get("api_url"), retries=False
        ) as client:
            names = [cluster.name for cluster in client.clusters.list()]
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [name for name in names if name.startswith(incomplete)]
