"""Plans, tenant, API keys, members and profiles from the terminal, against a real server."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from kupe.cli.main import app
from tests.support.live_server import LiveKupe

pytestmark = pytest.mark.slow
NO_ENV: dict[str, str | None] = {
    "KUPE_API_URL": None,
    "KUPE_API_KEY": None,
    "KUPE_TENANT": None,
    "KUPE_PROFILE": None,
}


def invoke(
    live: LiveKupe, home: Path, *args: str, input: str | None = None, **env: str | None
) -> Result:
    environ: dict[str, str | None] = {**live.client_env(home), "KUPE_PROFILE": None}
    environ.update(env)
    return CliRunner().invoke(app, list(args), env=environ, input=input)


def test_plans(live_server: LiveKupe, tmp_path: Path) -> None:
    listed = invoke(live_server, tmp_path, "plans", "list", "-o", "json")
    assert listed.exit_code == 0, listed.output
    assert [p["name"] for p in json.loads(listed.stdout)["items"]] == [
        "business",
        "enterprise",
        "pro",
        "starter",
    ]
    pro = invoke(live_server, tmp_path, "plans", "get", "pro", "-o", "yaml")
    assert yaml.safe_load(pro.stdout)["maxClusters"] == 5
    table = invoke(live_server, tmp_path, "plans", "get", "starter")
    assert "Max clusters:" in table.stdout
    missing = invoke(live_server, tmp_path, "plans", "get", "platinum")
    assert missing.exit_code == 1
    assert "HTTP 404" in missing.stderr


def test_tenant_get_and_update(live_server: LiveKupe, tmp_path: Path) -> None:
    got = invoke(live_server, tmp_path, "tenant", "get", "-o", "json")
    assert got.exit_code == 0, got.output
    tenant = json.loads(got.stdout)
    assert tenant["name"] == "default"
    flipped = not tenant["enforceLogLimit"]
    flag = "--enforce-log-limit" if flipped else "--no-enforce-log-limit"
    updated = invoke(live_server, tmp_path, "tenant", "update", flag, "-o", "json")
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.stdout)["enforceLogLimit"] is flipped
    assert invoke(live_server, tmp_path, "tenant", "update").exit_code == 2
    table = invoke(live_server, tmp_path, "tenant", "get")
    assert "Members:" in table.stdout


def test_apikeys_create_use_and_revoke(live_server: LiveKupe, tmp_path: Path) -> None:
    created = invoke(
        live_server,
        tmp_path,
        "apikeys", "create", "--display-name", "ci", "--role", "readonly", "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    assert key["key"].startswith("kupe_")
    listed = invoke(live_server, tmp_path, "apikeys", "list", "-o", "json")
    assert key["id"] in [k["id"] for k in json.loads(listed.stdout)["items"]]
    assert key["key"] not in listed.stdout

    as_ci = invoke(live_server, tmp_path, "clusters", "list", KUPE_API_KEY=key["key"])
    assert as_ci.exit_code == 0, as_ci.output
    readonly = invoke(
        live_server,
        tmp_path,
        "clusters", "create", "nope", "--display-name", "N", "--type", "shared",
        KUPE_API_KEY=key["key"],
    )  # fmt: skip
    assert readonly.exit_code == 1
    assert "HTTP 403" in readonly.stderr

    revoked = invoke(live_server, tmp_path, "apikeys", "delete", key["id"], "--yes")
    assert revoked.exit_code == 0, revoked.output
    after = invoke(live_server, tmp_path, "clusters", "list", KUPE_API_KEY=key["key"])
    assert after.exit_code == 1
    assert "HTTP 401" in after.stderr


def test_members(live_server: LiveKupe, tmp_path: Path) -> None:
    email = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    added = invoke(live_server, tmp_path, "members", "add", email, "--role", "readonly")
    assert added.exit_code == 0, added.output
    updated = invoke(
        live_server, tmp_path, "members", "update", email, "--role", "admin", "-o", "json"
    )
    assert json.loads(updated.stdout) == {"email": email, "role": "admin"}
    listed = invoke(live_server, tmp_path, "members", "list", "-o", "json")
    assert {"email": email, "role": "admin"} in json.loads(listed.stdout)["items"]
    again = invoke(live_server, tmp_path, "members", "add", email, "--role", "admin")
    assert again.exit_code == 1
    assert "HTTP 409" in again.stderr
    removed = invoke(live_server, tmp_path, "members", "remove", email, "--yes")
    assert removed.exit_code == 0, removed.output
    listed = invoke(live_server, tmp_path, "members", "list", "-o", "json")
    assert email not in listed.stdout


def test_profiles_and_environment_precedence(live_server: LiveKupe, tmp_path: Path) -> None:
    set_up = invoke(
        live_server,
        tmp_path,
        "config", "set-profile", "local", "--api-url", live_server.url, "--tenant", "default",
        "--api-key", "-",
        input=live_server.key + "\n",
        **NO_ENV,
    )  # fmt: skip
    assert set_up.exit_code == 0, set_up.output
    path = tmp_path / "xdg" / "kupe" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert live_server.key in path.read_text()

    # Only the profile: no KUPE_* in the environment.
    listed = invoke(live_server, tmp_path, "clusters", "list", "-o", "json", **NO_ENV)
    assert listed.exit_code == 0, listed.output

    invoke(
        live_server,
        tmp_path,
        "config", "set-profile", "down", "--api-url", "http://127.0.0.1:9", "--tenant", "default",
        **NO_ENV,
    )  # fmt: skip
    assert invoke(live_server, tmp_path, "config", "use", "down", **NO_ENV).exit_code == 0
    down = invoke(live_server, tmp_path, "plans", "list", **NO_ENV)
    assert down.exit_code == 1
    assert "Could not reach http://127.0.0.1:9" in down.stderr
    # --profile picks another profile; the environment overrides the profile's fields.
    assert (
        invoke(live_server, tmp_path, "plans", "list", "--profile", "local", **NO_ENV).exit_code
        == 0
    )
    env_wins = invoke(
        live_server, tmp_path, "plans", "list", **{**NO_ENV, "KUPE_API_URL": live_server.url}
    )
    assert env_wins.exit_code == 0, env_wins.output

    profiles = invoke(live_server, tmp_path, "config", "list", **NO_ENV)
    assert live_server.key not in profiles.stdout
    [current] = [line for line in profiles.stdout.splitlines() if line.startswith("*")]
    assert current.split()[1] == "down"

    unknown = invoke(live_server, tmp_path, "config", "use", "nowhere", **NO_ENV)
    assert unknown.exit_code == 2
    missing = invoke(live_server, tmp_path, "plans", "list", "--profile", "nowhere", **NO_ENV)
    assert missing.exit_code == 2
    assert "No profile named 'nowhere'" in missing.stderr

    # A kubeconfig made through a profile pins its exec plugin to that profile.
    name = f"prof-{uuid.uuid4().hex[:6]}"
    local = {**NO_ENV, "KUPE_PROFILE": "local"}
    created = invoke(
        live_server,
        tmp_path,
        "clusters", "create", name, "--display-name", "P", "--type", "shared",
        "--wait", "--timeout", "60", "--poll-interval", "0.2",
        **local,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    document = yaml.safe_load(
        invoke(live_server, tmp_path, "clusters", "kubeconfig", name, **local).stdout
    )
    args = document["users"][0]["user"]["exec"]["args"]
    assert args == [
        "auth", "get-token", "--tenant", "default", "--cluster", name,
        "--api-url", live_server.url, "--profile", "local",
    ]  # fmt: skip

    # The plugin brings a short-lived token for this cluster, never the API key, and keeps it.
    get_token = ("auth", "get-token", "--cluster", name, "--profile", "local")
    first = json.loads(invoke(live_server, tmp_path, *get_token, **NO_ENV).stdout)["status"]
    assert first["token"].startswith("kct_")
    assert live_server.key not in json.dumps(first)
    assert first["expirationTimestamp"].endswith("Z")
    again = json.loads(invoke(live_server, tmp_path, *get_token, **NO_ENV).stdout)["status"]
    assert again == first
    [cached] = (tmp_path / ".cache" / "kupe" / "credentials").iterdir()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    assert stat.S_IMODE(cached.parent.stat().st_mode) == 0o700
    # Another cluster behind the same name (deleted and created again: a new CA) gets a new
    # token, never its predecessor's; kubectl says which cluster it talks to.
    info = {"kind": "ExecCredential", "spec": {"cluster": {"server": "https://127.0.0.1:1"}}}
    info["spec"]["cluster"]["certificate-authority-data"] = "bmV3IGNh"
    renewed = invoke(
        live_server, tmp_path, *get_token, **NO_ENV, KUBERNETES_EXEC_INFO=json.dumps(info)
    )
    assert json.loads(renewed.stdout)["status"]["token"] != first["token"]
    invoke(live_server, tmp_path, "clusters", "delete", name, "--yes", **local)

    without = invoke(live_server, tmp_path, "auth", "get-token", "--profile", "local", **NO_ENV)
    assert without.exit_code == 1
    assert "--cluster is required" in without.stderr
    no_key = invoke(
        live_server, tmp_path, "auth", "get-token", "--cluster", name, "--profile", "down", **NO_ENV
    )
    assert no_key.exit_code == 1
    assert "no API key configured" in no_key.stderr
