"""`kupe auth get-token`: the kubectl exec credential plugin. It asks Kupe for a short-lived
token for one cluster (never hands the cluster the Kupe API key) and keeps it until shortly
before it expires."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from kupe.cli.connection import ApiUrlOpt, ProfileOpt, connect
from kupe.cli.output import errors_reported, fail
from kupe.core.kubeconfig import EXEC_API_VERSION
from kupe.sdk import current_profile, resolve_settings

app = typer.Typer(help="Credentials for kubectl.", no_args_is_help=True)
# A cached token is used until this long before it expires.
REFRESH_MARGIN = timedelta(seconds=60)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kupe" / "credentials"


def _cache_file(api_url: str, tenant: str, cluster: str, api_key: str) -> Path:
    # The key's hash is part of the name: another key never reuses this key's token. So is the
    # cluster kubectl is talking to (its address and CA, from KUBERNETES_EXEC_INFO): a cluster
    # deleted and created again under the same name never gets its predecessor's token.
    key = hashlib.sha256(api_key.encode()).hexdigest()
    parts = (api_url, tenant, cluster, key, _exec_cluster())
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return _cache_dir() / f"{digest}.json"


def _exec_cluster() -> str:
    """The server and CA kubectl passes to the plugin (`provideClusterInfo`), or ""."""
    try:
        info = json.loads(os.environ.get("KUBERNETES_EXEC_INFO", ""))
        found = info["spec"]["cluster"]
        return f"{found.get('server', '')}\n{found.get('certificate-authority-data', '')}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def _cached(path: Path, now: datetime) -> dict[str, str] | None:
    try:
        found = json.loads(path.read_text())
        expires = datetime.fromisoformat(found["expirationTimestamp"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if expires - REFRESH_MARGIN <= now:
        return None
    return {"token": str(found["token"]), "expirationTimestamp": found["expirationTimestamp"]}


def _store(path: Path, status: dict[str, str]) -> None:
    """Write the cached token atomically, owner-only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(status, out)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@app.command("get-token")
def get_token(
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-c", help="The cluster the token is for.")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The tenant the cluster belongs to.")
    ] = None,
    profile: ProfileOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Print an ExecCredential with a short-lived token for one cluster, for kubectl."""
    if not cluster:
        fail(
            "--cluster is required; a kubeconfig that lacks it comes from an older kupe: "
            "write it again with `kupe clusters kubeconfig NAME --write`"
        )
    with errors_reported():
        settings = resolve_settings(
            api_url=api_url, profile=profile or current_profile(), tenant=tenant
        )
    if not settings.api_key:
        fail("no API key configured: set KUPE_API_KEY or `kupe config set-profile --api-key`")
    if not settings.tenant:
        fail("no tenant configured: pass --tenant or set KUPE_TENANT")
    path = _cache_file(settings.api_url, settings.tenant, cluster, settings.api_key)
    status = _cached(path, datetime.now(UTC))
    if status is None:
        with connect(profile or current_profile(), tenant, api_url) as client:
            issued = client.clusters.credentials(cluster)
        expires = issued.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"token": issued.token, "expirationTimestamp": expires}
        with contextlib.suppress(OSError):  # a read-only home only costs a request per use
            _store(path, status)
    credential = {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": status}
    sys.stdout.write(json.dumps(credential) + "\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="auth")
