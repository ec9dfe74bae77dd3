"""`kupe auth get-token`: the kubectl exec credential plugin (no secret in kubeconfigs)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from kupe.cli.connection import ApiUrlOpt, ProfileOpt
from kupe.cli.output import errors_reported, fail, note
from kupe.core.kubeconfig import EXEC_API_VERSION
from kupe.sdk import current_profile, resolve_settings

app = typer.Typer(help="Credentials for kubectl.", no_args_is_help=True)


@app.command("get-token")
def get_token(
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The tenant the cluster belongs to.")
    ] = None,
    profile: ProfileOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Print an ExecCredential with the configured token, for kubectl."""
    with errors_reported():
        settings = resolve_settings(
            api_url=api_url, profile=profile or current_profile(), tenant=None
        )
    if not settings.api_key:
        fail("no API key configured: set KUPE_API_KEY or `kupe config set-profile --api-key`")
    if tenant and settings.tenant and tenant != settings.tenant:
        # kubectl shows the plugin's stderr, so the mismatch is visible where it hurts.
        note(
            f"warning: this cluster belongs to tenant {tenant!r} but the configured "
            f"tenant is {settings.tenant!r}; the API key may not be valid for it"
        )
    credential = {
        "apiVersion": EXEC_API_VERSION,
        "kind": "ExecCredential",
        "status": {"token": settings.api_key},
    }
    sys.stdout.write(json.dumps(credential) + "\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="auth")
