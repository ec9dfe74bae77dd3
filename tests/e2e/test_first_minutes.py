"""A new user's first minutes (issue 12, items 5, 6, 12, 18, 19, 20): what `kupe serve` prints
and keeps on disk, /docs without internet, kubeconfigs that work outside the venv, a quiet
install, and a README whose links and examples hold."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.live_server import FAST, KUBECTL_BIN, KUPE_BIN, LiveKupe
from tests.support.server_process import KUPE, clean_environ, free_port, process_group, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def start_output(log: Path, marker: str, count: int = 1) -> str:
    """The log once `marker` appears in it `count` times (bounded wait)."""

    def probe() -> str | None:
        text = log.read_text()
        return text if text.count(marker) >= count else None

    return wait_for(f"{marker!r} in {log.name}", probe)


# --- items 6 and 19: one banner on every start; the key only to a terminal -----------------


def test_every_start_prints_a_banner_and_never_the_key_into_a_log(tmp_path: Path) -> None:
    with process_group(tmp_path, FAST) as group:
        first = group.serve().wait_ready()
        key = group.api_key()
        output = start_output(first.log_file, "is serving")
        assert key not in output
        assert "bootstrap-api-key" in output
        for expected in (
            f"is serving {first.url}",
            f"{first.url}/docs",
            str(group.data_dir.resolve()),
            "simulated",
        ):
            assert expected in output, output
        first.stop()
        before = first.log_file.read_text()
        first.start().wait_ready()
        restarted = start_output(first.log_file, "is serving", count=2)
        assert f"is serving {first.url}" in restarted[len(before) :]
        assert "bootstrap-api-key (tenant default)" in restarted[len(before) :]
        assert key not in restarted
        first.stop()


def test_on_a_terminal_the_bootstrap_key_is_shown_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_environ({**FAST, "KUPE_DATA_DIR": str(data), "KUPE_PORT": str(free_port())})
    leader, follower = pty.openpty()
    with (tmp_path / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [*KUPE, "serve"], env=env, stdout=follower, stderr=stderr, close_fds=True
        )
    os.close(follower)
    output = b""
    try:
        deadline = time.monotonic() + 60
        while b"is serving" not in output and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.2)[0]:
                output += os.read(leader, 65536)
    finally:
        process.terminate()
        process.wait(timeout=30)
        os.close(leader)
    key = (data / "bootstrap-api-key").read_text().strip()
    assert f"export KUPE_API_KEY={key}".encode() in output


# --- item 5: data at rest is owner-only -----------------------------------------------------


def test_the_data_dir_is_owner_only_and_an_open_one_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    with process_group(tmp_path, FAST) as group:
        server = group.serve().wait_ready()
        key = group.api_key()
        server.stop()
        # As an older Kupe (or a careless copy) left it: everything readable by all.
        for path in [data, *data.iterdir(), *tmp_path.glob("simulated-cloud.db*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        server.start().wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            created = client.post(
                "/api/v1/tenants/default/clusters",
                json={"name": "web", "displayName": "Web", "type": "shared"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert created.status_code == 201
        files = sorted(data.iterdir())
        names = {path.name for path in files}
        assert {"kupe.db", "kupe.db-wal", "kupe.db-shm", "bootstrap-api-key"} <= names
        assert "kupe.db.write-lock" in names
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        cloud = [group.cloud, *group.cloud.parent.glob(group.cloud.name + "-*")]
        for path in [*files, *cloud]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        server.stop()


# --- item 18: /docs works offline -----------------------------------------------------------


def test_docs_use_only_assets_kupe_serves_itself(live_server: LiveKupe) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        references = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
        assert len(references) >= 3
        assert "//" not in " ".join(references), references  # no other origin, no CDN
        for reference in references:
            asset = client.get(reference)
            assert asset.status_code == 200, reference
        script = client.get(next(r for r in references if r.endswith(".js")))
        assert "SwaggerUIBundle" in script.text
        assert client.get("/docs/oauth2-redirect").status_code == 200


# --- item 12: kubeconfigs name this kupe, and --write merges ---------------------------------


def _cluster(live: LiveKupe, name: str) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {live.key}"}
        url = f"/api/v1/tenants/{live.tenant}/clusters"
        body = {"name": name, "displayName": name, "type": "shared"}
        assert client.post(url, json=body, headers=headers).status_code == 201
        wait_for(
            f"{name} Running",
            lambda: (
                client.get(f"{url}/{name}", headers=headers).json()["status"]["phase"] == "Running"
            ),
        )


def test_kubectl_finds_kupe_outside_the_venv(live_server: LiveKupe, tmp_path: Path) -> None:
    _cluster(live_server, "outside")
    # PATH without the venv, as in a shell that never activated it.
    env = {**live_server.client_env(tmp_path), "PATH": "/usr/bin:/bin"}
    target = tmp_path / "kubeconfig"
    written = subprocess.run(
        [str(KUPE_BIN), "clusters", "kubeconfig", "outside", "--write", str(target)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    exec_ = yaml.safe_load(target.read_text())["users"][0]["user"]["exec"]
    assert Path(exec_["command"]).is_absolute()
    assert exec_["command"] == str(KUPE_BIN.resolve())
    # kubectl runs the plugin (its cluster endpoint is not reachable: that error comes after).
    kubectl = subprocess.run(
        [str(KUBECTL_BIN), "--kubeconfig", str(target), "get", "--raw", "/version",
         "--request-timeout", "5s"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "executable" not in kubectl.stderr, kubectl.stderr
    assert "not found" not in kubectl.stderr, kubectl.stderr
    token = subprocess.run(
        [exec_["command"], *exec_["args"]],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert json.loads(token.stdout)["kind"] == "ExecCredential"


def test_write_onto_an_existing_kubeconfig_merges_or_refuses(
    live_server: LiveKupe, tmp_path: Path
) -> None:
    _cluster(live_server, "merged")
    env = live_server.client_env(tmp_path)
    target = tmp_path / "config"
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "other", "cluster": {"server": "https://other:6443"}}],
        "users": [{"name": "other", "user": {"token": "other-token"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
        "current-context": "other",
    }
    target.write_text(yaml.safe_dump(other))

    def write(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUPE_BIN), "clusters", "kubeconfig", "merged", "--write", str(target), *extra],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert write().returncode == 0
    merged = yaml.safe_load(target.read_text())
    assert {c["name"] for c in merged["contexts"]} == {"other", "kupe-default-merged"}
    assert merged["users"][0] == other["users"][0]
    assert write().returncode == 0  # the same entries again: nothing differs
    # An entry of the same name that differs is not replaced without --force.
    merged["clusters"][-1]["cluster"]["server"] = "https://elsewhere:6443"
    target.write_text(yaml.safe_dump(merged))
    refused = write()
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    assert "elsewhere" in target.read_text()
    assert write("--force").returncode == 0
    assert "elsewhere" not in target.read_text()
    assert "other-token" in target.read_text()
    target.write_text("this is: [not a kubeconfig")
    assert write().returncode == 1
    assert target.read_text() == "this is: [not a kubeconfig"


# --- item 19: a quiet install ----------------------------------------------------------------


def test_installing_kupe_prints_no_setuptools_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--dry-run", "-e", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr


# --- item 20: the README's links and its port -------------------------------------------------


def test_the_readme_links_only_files_of_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)[^)]*\)|`((?:\.\./|docs/)[^`]+\.md)`", readme)
    targets = [a or b for a, b in links if not (a or b).startswith("http")]
    assert "docs/api.md" in targets
    assert "docs/operations.md" in targets
    for target in targets:
        assert (ROOT / target).is_file(), target
        assert (ROOT / target).resolve().is_relative_to(ROOT), target
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "KUPE_PORT" in quick_start


def test_the_contract_in_docs_covers_every_route_kupe_serves(live_server: LiveKupe) -> None:
    contract = (ROOT / "docs" / "api.md").read_text()
    document = httpx.get(f"{live_server.url}/api/v1/openapi.json", timeout=30).json()
    for path in document["paths"]:
        route = re.sub(r"\{[^}]+\}", "{x}", path.removeprefix("/api/v1"))
        mentioned = re.sub(r"\{[^}]+\}", "{x}", contract)
        assert route in mentioned, path
