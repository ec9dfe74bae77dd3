"""The cluster lifecycle from the terminal: CLI → SDK → a real `kupe serve` with its reconciler
and the simulated provider. Exit codes, JSON/YAML output, progress, failures, kubectl."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import select
import stat
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from kupe.cli.main import app
from tests.support.live_server import KUBECTL_BIN, KUPE_BIN, LiveKupe
from tests.support.phases import assert_seen_along
from tests.support.server_process import wait_for

pytestmark = pytest.mark.slow
FAST_POLL = ("--poll-interval", "0.2")


@dataclass
class Cli:
    """Runs `kupe` against the live server: in-process (CliRunner) or as the real binary."""

    live: LiveKupe
    home: Path

    def env(self, **extra: str | None) -> dict[str, str]:
        return self.live.client_env(self.home, **extra)

    def invoke(self, *args: str, input: str | None = None, **env: str | None) -> Result:
        environ: dict[str, str | None] = {**self.env(), "KUPE_PROFILE": None, "KUBECONFIG": None}
        environ.update(env)
        return CliRunner().invoke(app, list(args), env=environ, input=input)

    def run(
        self, *args: str, input: str | None = None, **env: str | None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUPE_BIN), *args],
            env=self.env(**env),
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def cli(live_server: LiveKupe, tmp_path: Path) -> Cli:
    return Cli(live_server, tmp_path)


def progress_of(name: str, stderr: str) -> list[str]:
    """The phases a --wait printed (not a terminal: one line per change, on stderr)."""
    prefix = f"{name}: "
    return [
        line.removeprefix(prefix).split(" ")[0].rstrip(",")
        for line in stderr.splitlines()
        if line.startswith(prefix)
    ]


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_whole_lifecycle_with_the_real_binary(cli: Cli) -> None:
    name = unique("web")
    created = cli.run(
        "clusters", "create", name, "--display-name", "Web", "--type", "shared",
        "--version", "1.31", "--cpu", "2", "--memory", "4Gi", "--storage", "20Gi",
        "--wait", "--timeout", "60", *FAST_POLL, "-o", "json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    cluster = json.loads(created.stdout)
    assert cluster["name"] == name
    assert cluster["status"]["phase"] == "Running"
    assert cluster["status"]["kubernetesVersion"].startswith("v1.31.")
    # Not a terminal: one progress line per phase change, on stderr.
    assert_seen_along(progress_of(name, created.stderr), ("Pending", "Provisioning", "Running"))

    listed = json.loads(cli.run("clusters", "list", "-o", "json").stdout)
    assert name in [item["name"] for item in listed["items"]]

    updated = cli.run(
        "clusters", "update", name, "--version", "1.32", "--cpu", "3",
        "--wait", "--timeout", "60", *FAST_POLL, "-o", "json",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    after = json.loads(updated.stdout)
    assert after["status"]["kubernetesVersion"].startswith("v1.32.")
    assert after["status"]["observedGeneration"] == after["generation"] == 2
    assert after["resources"]["cpu"] == "3"
    assert_seen_along(progress_of(name, updated.stderr), ("Running", "Upgrading", "Running"))

    table = cli.run("clusters", "get", name)
    assert table.returncode == 0
    assert "Running" in table.stdout
    assert "Conditions:" in table.stdout

    deleted = cli.run("clusters", "delete", name, "--wait", "--timeout", "60", *FAST_POLL)
    assert deleted.returncode == 0, deleted.stderr
    assert set(progress_of(name, deleted.stderr)) <= {"Terminating", "deleted"}
    assert f"Cluster {name} deleted" in deleted.stderr

    gone = cli.run("clusters", "get", name)
    assert gone.returncode == 1
    assert "not found" in gone.stderr
    assert "request id" in gone.stderr
    assert gone.stdout == ""

    # The timeline outlives the cluster (within the event retention).
    events = cli.run("clusters", "events", name, "-o", "json")
    assert events.returncode == 0, events.stderr
    reasons = [item["reason"] for item in json.loads(events.stdout)["items"]]
    assert reasons[0] == "Created"
    assert reasons[-2:] == ["DeleteRequested", "Deleted"]
    for wanted in ("Running", "UpgradeStarted", "Upgraded"):
        assert wanted in reasons, reasons
    table = cli.run("clusters", "events", name)
    assert "DeleteRequested" in table.stdout


def test_a_cluster_ending_failed_exits_1_with_the_reason(cli: Cli) -> None:
    name = unique("doomed")
    result = cli.invoke(
        "clusters", "create", name, "--display-name", "Doomed", "--type", "shared",
        "--wait", "--timeout", "60", *FAST_POLL,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "simulated permanent failure" in result.stderr
    assert f"{name}: Failed" in result.stderr
    assert "CLUSTER_FAILED" in result.stderr
    waited = cli.invoke("clusters", "wait", name, "--timeout", "5", *FAST_POLL)
    assert waited.exit_code == 1
    assert "failed" in waited.stderr
    assert cli.invoke("clusters", "delete", name, "--yes").exit_code == 0


def test_a_timeout_exits_1(cli: Cli) -> None:
    name = unique("slow")
    created = cli.invoke("clusters", "create", name, "--display-name", "S", "--type", "shared")
    assert created.exit_code == 0, created.output
    # Running never turns into Degraded on its own.
    result = cli.invoke(
        "clusters", "wait", name, "--phase", "Degraded", "--timeout", "1.5", *FAST_POLL
    )
    assert result.exit_code == 1
    assert "did not become Degraded within 1.5s" in result.stderr
    cli.invoke("clusters", "delete", name, "--yes")


def test_usage_errors_exit_2(cli: Cli) -> None:
    cases = [
        ("clusters", "create", "web", "--display-name", "W", "--type", "shared", "--cpu", "lots"),
        ("clusters", "create", "web", "--display-name", "W", "--type", "shared", "--memory", "16"),
        ("clusters", "create", "web", "--display-name", "W", "--type", "huge"),
        ("clusters", "create", "Web!", "--display-name", "W", "--type", "shared"),
        ("clusters", "create", "web", "--type", "shared"),
        ("clusters", "update", "web"),
        ("clusters", "wait", "web", "--phase", "Sleeping"),
        ("clusters", "frobnicate"),
    ]
    for args in cases:
        result = cli.invoke(*args)
        assert result.exit_code == 2, (args, result.output)
    unconfigured = cli.invoke("clusters", "list", KUPE_TENANT=None)
    assert unconfigured.exit_code == 2
    assert "No tenant configured" in unconfigured.stderr


def test_api_errors_show_the_servers_message_and_request_id(
    cli: Cli, live_server: LiveKupe
) -> None:
    name = unique("dup")
    first = cli.invoke("clusters", "create", name, "--display-name", "D", "--type", "shared")
    assert first.exit_code == 0
    again = cli.invoke("clusters", "create", name, "--display-name", "D", "--type", "shared")
    assert again.exit_code == 1
    assert "already exists" in again.stderr
    assert "HTTP 409" in again.stderr
    request_id = again.stderr.rsplit("request id ", 1)[1].rstrip(")\n")
    # The id is the one the server logged for that request. The line is written once the
    # answer has gone out, so it may land a moment after the CLI has its answer (seen in CI).
    wait_for(f"request {request_id} in the server's log", lambda: request_id in live_server.log())

    bad_upgrade = cli.invoke("clusters", "update", name, "--version", "1.10")
    assert bad_upgrade.exit_code == 1
    assert "UNSUPPORTED" in bad_upgrade.stderr

    denied = cli.invoke("clusters", "list", KUPE_API_KEY="kupe_abcdefgh_" + "x" * 43)
    assert denied.exit_code == 1
    assert "HTTP 401" in denied.stderr

    unreachable = cli.invoke("clusters", "list", "--api-url", "http://127.0.0.1:9")
    assert unreachable.exit_code == 1
    assert "Could not reach" in unreachable.stderr
    cli.invoke("clusters", "delete", name, "--yes")


def test_outputs_parse_as_json_and_yaml(cli: Cli) -> None:
    name = unique("out")
    created = cli.invoke(
        "clusters", "create", name, "--display-name", "Out", "--type", "shared", "-o", "json"
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["status"]["phase"] == "Pending"
    as_yaml = yaml.safe_load(cli.invoke("clusters", "get", name, "-o", "yaml").stdout)
    assert as_yaml["name"] == name
    assert as_yaml["displayName"] == "Out"
    table = cli.invoke("clusters", "list").stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "TYPE", "VERSION", "PHASE", "CPU", "MEMORY", "STORAGE", "AGE"]
    assert any(line.startswith(name) for line in table.splitlines())
    cli.invoke("clusters", "delete", name, "--yes")


def test_alerts_file_and_clearing(cli: Cli, tmp_path: Path) -> None:
    name = unique("alerts")
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text("cpuHigh:\n  threshold: 90\n  for: 5m\n")
    created = cli.invoke(
        "clusters", "create", name, "--display-name", "A", "--type", "shared",
        "--alerts-file", str(alerts), "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["alerts"] == {"cpuHigh": {"threshold": 90, "for": "5m"}}
    cleared = cli.invoke("clusters", "update", name, "--clear-alerts", "-o", "json")
    assert "alerts" not in json.loads(cleared.stdout)
    cli.invoke("clusters", "delete", name, "--yes")


def test_kubeconfig_is_read_by_kubectl(cli: Cli, tmp_path: Path) -> None:
    name = unique("kube")
    created = cli.invoke(
        "clusters", "create", name, "--display-name", "K", "--type", "shared",
        "--wait", "--timeout", "60", *FAST_POLL, "-o", "json",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    endpoint = json.loads(created.stdout)["status"]["endpoint"]
    target = tmp_path / "kubeconfig"
    written = cli.invoke("clusters", "kubeconfig", name, "--write", str(target))
    assert written.exit_code == 0, written.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600

    context = f"kupe-default-{name}"
    view = kubectl_view(target)
    assert view["current-context"] == context
    assert view["clusters"][0]["cluster"]["server"] == endpoint
    ca = base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca.startswith(b"-----BEGIN CERTIFICATE-----")
    [ctx] = view["contexts"]
    assert ctx["name"] == context
    assert ctx["context"] == {"cluster": context, "user": context}
    exec_ = view["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1"
    # The absolute path of this kupe, so kubectl finds it outside the venv (issue 12, item 12).
    assert exec_["command"] == str(KUPE_BIN.resolve())
    assert exec_["args"][:2] == ["auth", "get-token"]
    assert cli.live.key not in target.read_text()  # no secret inside

    # The same CA the API hands out.
    details = json.loads(cli.invoke("clusters", "get", name, "-o", "json").stdout)
    assert details["status"]["endpoint"] == endpoint

    token = cli.run(*exec_["args"])
    assert token.returncode == 0, token.stderr
    credential = json.loads(token.stdout)
    assert credential["kind"] == "ExecCredential"
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
    # A token for this cluster only; the API key itself never reaches kubectl or the cluster.
    assert credential["status"]["token"].startswith("kct_")
    assert cli.live.key not in token.stdout
    cli.invoke("clusters", "delete", name, "--yes")


def test_kubeconfig_merge_keeps_other_entries(cli: Cli, tmp_path: Path) -> None:
    name = unique("merge")
    created = cli.invoke(
        "clusters", "create", name, "--display-name", "M", "--type", "shared",
        "--wait", "--timeout", "60", *FAST_POLL,
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    existing = tmp_path / "config"
    existing.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "other", "cluster": {"server": "https://other:6443"}}],
                "users": [{"name": "other", "user": {"token": "other-token"}}],
                "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
                "current-context": "other",
            }
        )
    )
    # --merge without --write goes where kubectl looks: the first KUBECONFIG entry.
    merged = cli.invoke("clusters", "kubeconfig", name, "--merge", KUBECONFIG=str(existing))
    assert merged.exit_code == 0, merged.output
    again = cli.invoke("clusters", "kubeconfig", name, "--merge", "--write", str(existing))
    assert again.exit_code == 0, again.output
    view = kubectl_view(existing)
    context = f"kupe-default-{name}"
    assert view["current-context"] == context
    assert sorted(c["name"] for c in view["contexts"]) == sorted(["other", context])
    assert len(view["clusters"]) == 2
    other = next(c for c in view["clusters"] if c["name"] == "other")
    assert other["cluster"]["server"] == "https://other:6443"
    other_user = next(u for u in view["users"] if u["name"] == "other")
    assert other_user["user"]["token"] == "other-token"
    cli.invoke("clusters", "delete", name, "--yes")


def test_kubeconfig_before_running_is_an_error(cli: Cli) -> None:
    name = unique("doomed")
    cli.invoke("clusters", "create", name, "--display-name", "D", "--type", "shared")
    cli.invoke("clusters", "wait", name, "--phase", "Failed", "--timeout", "30", *FAST_POLL)
    result = cli.invoke("clusters", "kubeconfig", name)
    assert result.exit_code == 1
    assert "CLUSTER_FAILED" in result.stderr
    cli.invoke("clusters", "delete", name, "--yes")


def kubectl_view(path: Path) -> dict[str, object]:
    out = subprocess.run(
        [str(KUBECTL_BIN), "config", "view", "--raw", "-o", "json", "--kubeconfig", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    view: dict[str, object] = json.loads(out.stdout)
    return view


def run_in_terminal(cli: Cli, args: list[str], answer: bytes | None = None) -> tuple[int, str]:
    """Run the real binary with a pseudo-terminal as stdin, stdout and stderr."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(KUPE_BIN), *args],
        env=cli.env(TERM="xterm-256color", COLUMNS="120"),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    answered = answer is None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(leader, answer or b"")
                answered = True
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=30), output.decode(errors="replace")


def plain(screen: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)


def test_on_a_terminal_progress_is_live_and_delete_asks_first(cli: Cli) -> None:
    name = unique("tty")
    code, screen = run_in_terminal(
        cli,
        ["clusters", "create", name, "--display-name", "T", "--type", "shared",
         "--wait", "--timeout", "60", *FAST_POLL],
    )  # fmt: skip
    assert code == 0, screen
    assert "after" in screen  # the final line: "✓ name Running after 2s"
    # The live line is redrawn as phases change: the last drawing has the whole trail.
    trails = re.findall(r"Pending(?: → [A-Za-z]+)*", plain(screen))
    assert trails, screen
    assert_seen_along(trails[-1].split(" → "), ("Pending", "Provisioning", "Running"))
    assert "\x1b[" in screen  # colour and cursor control, as a terminal gets

    code, screen = run_in_terminal(cli, ["clusters", "delete", name], answer=b"n\n")
    assert code == 1
    assert f"Delete cluster {name}?" in screen
    assert cli.invoke("clusters", "get", name).exit_code == 0  # still there

    code, screen = run_in_terminal(
        cli, ["clusters", "delete", name, "--wait", "--timeout", "60", *FAST_POLL], answer=b"y\n"
    )
    assert code == 0, screen
    assert "deleted" in screen
    assert cli.invoke("clusters", "get", name).exit_code == 1


def test_shell_completion_offers_cluster_names(cli: Cli) -> None:
    name = unique("comp")
    assert (
        cli.invoke("clusters", "create", name, "--display-name", "C", "--type", "shared").exit_code
        == 0
    )
    completed = cli.run(
        _KUPE_COMPLETE="complete_bash", COMP_WORDS=f"kupe clusters get {name[:6]}", COMP_CWORD="3"
    )
    assert completed.returncode == 0, completed.stderr
    assert name in completed.stdout.split()
    cli.invoke("clusters", "delete", name, "--yes")
