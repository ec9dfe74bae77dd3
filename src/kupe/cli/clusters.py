"""`kupe clusters ...`: the cluster lifecycle from the terminal, through the SDK."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from kupe.cli import kubeconfig as kubeconfig_file
from kupe.cli.connection import ApiUrlOpt, ProfileOpt, TenantOpt, complete_cluster, connect
from kupe.cli.output import (
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    YesOpt,
    age,
    confirm,
    details,
    fail,
    new_table,
    note,
    phase_text,
    show,
    show_list,
    timestamp,
)
from kupe.cli.progress import PhaseProgress
from kupe.core.names import name_problem
from kupe.core.quantity import QuantityError, parse_cpu, parse_memory, parse_storage
from kupe.schemas.cluster import Cluster, ClusterPhase, ResourcesInput
from kupe.sdk import Client, ClusterFailed

app = typer.Typer(help="Create, inspect, change and delete clusters.", no_args_is_help=True)


class ClusterTypeChoice(StrEnum):
    shared = "shared"
    dedicated = "dedicated"


class PhaseChoice(StrEnum):
    Pending = "Pending"
    Provisioning = "Provisioning"
    Running = "Running"
    Upgrading = "Upgrading"
    Degraded = "Degraded"
    Failed = "Failed"
    Terminating = "Terminating"


def _checked(parse: Callable[[str], int]) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse(value)
        except QuantityError as exc:
            raise typer.BadParameter(exc.message) from None
        return value

    return check


def _check_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise typer.BadParameter(problem)
    return value


Name = Annotated[
    str, typer.Argument(help="Cluster name.", autocompletion=complete_cluster, show_default=False)
]
NewName = Annotated[
    str, typer.Argument(help="Cluster name (DNS label, 2-63 characters).", callback=_check_name)
]
Cpu = Annotated[
    str | None, typer.Option(help="Cores: 4, 1.5 or 500m.", callback=_checked(parse_cpu))
]
Memory = Annotated[
    str | None, typer.Option(help="With a unit, e.g. 16Gi.", callback=_checked(parse_memory))
]
Storage = Annotated[
    str | None, typer.Option(help="With a unit, e.g. 100Gi.", callback=_checked(parse_storage))
]
Version = Annotated[str | None, typer.Option(help="Kubernetes minor version, e.g. 1.32.")]
AlertsFile = Annotated[
    Path | None,
    typer.Option(
        "--alerts-file",
        help="JSON or YAML file with the alerts object ('-' reads stdin).",
        allow_dash=True,
    ),
]
Wait = Annotated[bool, typer.Option("--wait", help="Show progress until it is done.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait before giving up (exit 1).")]
PollInterval = Annotated[float, typer.Option(hidden=True, help="Seconds between polls.")]


# -- rendering ---------------------------------------------------------------------------


def allocation(c: Cluster) -> tuple[str, str, str]:
    """cpu, memory and storage the cluster has: its allocation, else what was set."""
    held = c.status.allocated_resources or c.resources
    if held is None:
        return ("", "", "")
    return (held.cpu or "", held.memory or "", held.storage or "")


def clusters_table(items: Sequence[Cluster]) -> Table:
    table = new_table("NAME", "TYPE", "VERSION", "PHASE", "CPU", "MEMORY", "STORAGE", "AGE")
    for c in items:
        table.add_row(
            c.name,
            c.type,
            c.version,
            phase_text(c.status.phase),
            *allocation(c),
            age(c.created_at),
        )
    return table


def cluster_details(c: Cluster) -> RenderableType:
    running = f" (running {c.status.kubernetes_version})" if c.status.kubernetes_version else ""
    applied = (
        "applied"
        if c.status.observed_generation >= c.generation
        else f"applying; observed {c.status.observed_generation}"
    )
    view = details(
        [
            ("Name", c.name),
            ("Display name", c.display_name),
            ("Type", c.type),
            ("Version", f"{c.version}{running}"),
            ("Phase", phase_text(c.status.phase)),
            ("Endpoint", c.status.endpoint),
            (
                "Resources",
                "cpu {}, memory {}, storage {}".format(*allocation(c)),
            ),
            ("Generation", f"{c.generation} ({applied})"),
            ("Alerts", "configured" if c.alerts else None),
            ("Created", timestamp(c.created_at)),
            ("Resource version", c.resource_version),
        ]
    )
    if not c.status.conditions:
        return view
    conditions = new_table("TYPE", "STATUS", "REASON", "MESSAGE", "SINCE")
    for cond in c.status.conditions:
        style = {"True": "green", "False": "red"}.get(cond.status, "yellow")
        conditions.add_row(
            cond.type,
            Text(cond.status, style=style),
            cond.reason,
            cond.message,
            age(cond.last_transition_time),
        )
    return Group(view, Text(""), Text("Conditions:", style="bold"), conditions)


# -- helpers -----------------------------------------------------------------------------


def _resources(cpu: str | None, memory: str | None, storage: str | None) -> ResourcesInput | None:
    if cpu is None and memory is None and storage is None:
        return None
    return ResourcesInput(cpu=cpu, memory=memory, storage=storage)


def _alerts(path: Path | None) -> dict[str, object] | None:
    if path is None:
        return None
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", EXIT_USAGE)
    except yaml.YAMLError as exc:
        fail(f"{path} is not valid JSON or YAML: {exc}", EXIT_USAGE)
    if not isinstance(data, dict):
        fail(f"{path} must hold an object (a mapping), not {type(data).__name__}", EXIT_USAGE)
    return data


def _wait_for(
    client: Client,
    name: str,
    phase: ClusterPhase,
    timeout: float,
    poll_interval: float,
) -> Cluster:
    with PhaseProgress(name) as progress:
        try:
            cluster = client.clusters.wait(
                name, phase, timeout=timeout, poll_interval=poll_interval, on_change=progress
            )
        except ClusterFailed:
            progress.finish("Failed", ok=False)
            raise
        progress.finish(cluster.status.phase)
        return cluster


# -- commands ----------------------------------------------------------------------------


@app.command("list")
def list_clusters(
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """List the tenant's clusters."""
    with connect(profile, tenant, api_url) as client:
        show_list(client.clusters.list(), output, clusters_table, "No clusters.")


@app.command("get")
def get_cluster(
    name: Name,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Show one cluster: spec, phase, endpoint and conditions."""
    with connect(profile, tenant, api_url) as client:
        show(client.clusters.get(name), output, cluster_details)


@app.command("create")
def create_cluster(
    name: NewName,
    display_name: Annotated[str, typer.Option("--display-name", help="Human name; immutable.")],
    type: Annotated[ClusterTypeChoice, typer.Option("--type", help="Immutable.")],
    version: Version = None,
    cpu: Cpu = None,
    memory: Memory = None,
    storage: Storage = None,
    alerts_file: AlertsFile = None,
    wait: Wait = False,
    timeout: Timeout = 900.0,
    poll_interval: PollInterval = 1.0,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Create a cluster; with --wait, show progress until it is Running."""
    alerts = _alerts(alerts_file)
    with connect(profile, tenant, api_url) as client:
        cluster = client.clusters.create(
            name,
            display_name=display_name,
            type=type.value,
            version=version,
            resources=_resources(cpu, memory, storage),
            alerts=alerts,
        )
        if wait:
            cluster = _wait_for(client, name, "Running", timeout, poll_interval)
        show(cluster, output, cluster_details)


@app.command("update")
def update_cluster(
    name: Name,
    version: Version = None,
    cpu: Cpu = None,
    memory: Memory = None,
    storage: Storage = None,
    alerts_file: AlertsFile = None,
    clear_alerts: Annotated[bool, typer.Option("--clear-alerts", help="Remove alerts.")] = False,
    wait: Wait = False,
    timeout: Timeout = 900.0,
    poll_interval: PollInterval = 1.0,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Change version (one minor up), resources or alerts; --wait until applied."""
    if alerts_file is not None and clear_alerts:
        fail("give --alerts-file or --clear-alerts, not both", EXIT_USAGE)
    resources = _resources(cpu, memory, storage)
    alerts = _alerts(alerts_file)
    if version is None and resources is None and alerts is None and not clear_alerts:
        fail(
            "nothing to update: give --version, --cpu, --memory, --storage or alerts",
            EXIT_USAGE,
        )
    with connect(profile, tenant, api_url) as client:
        cluster = client.clusters.update(
            name, version=version, resources=resources, alerts=alerts, clear_alerts=clear_alerts
        )
        if wait:
            cluster = _wait_for(client, name, "Running", timeout, poll_interval)
        show(cluster, output, cluster_details)


@app.command("delete")
def delete_cluster(
    name: Name,
    yes: YesOpt = False,
    wait: Annotated[bool, typer.Option("--wait", help="Show progress until it is gone.")] = False,
    timeout: Timeout = 900.0,
    poll_interval: PollInterval = 1.0,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Delete a cluster (asks first on a terminal); with --wait, until it is gone."""
    confirm(f"Delete cluster {name}? This cannot be undone", yes)
    with connect(profile, tenant, api_url) as client:
        client.clusters.delete(name)
        if not wait:
            note(f"Cluster {name} is being deleted")
            return
        with PhaseProgress(name) as progress:
            client.clusters.wait_deleted(
                name, timeout=timeout, poll_interval=poll_interval, on_change=progress
            )
            progress.finish("deleted")
        note(f"Cluster {name} deleted")


@app.command("wait")
def wait_cluster(
    name: Name,
    phase: Annotated[PhaseChoice, typer.Option(help="Phase to wait for.")] = PhaseChoice.Running,
    timeout: Timeout = 900.0,
    poll_interval: PollInterval = 1.0,
    output: OutputOpt = OutputFormat.table,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """Wait until a cluster reaches a phase; exit 1 if it fails or time runs out."""
    with connect(profile, tenant, api_url) as client:
        cluster = _wait_for(client, name, phase.value, timeout, poll_interval)
        show(cluster, output, cluster_details)


@app.command("kubeconfig")
def cluster_kubeconfig(
    name: Name,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            help="Write to this file (mode 0600) instead of stdout; an existing kubeconfig "
            "is merged into, keeping its other entries.",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Merge into the --write file (default: $KUBECONFIG or ~/.kube/config), "
            "keeping its other entries, and make this context current.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace entries of the same name that differ, or a file that is no kubeconfig.",
        ),
    ] = False,
    profile: ProfileOpt = None,
    tenant: TenantOpt = None,
    api_url: ApiUrlOpt = None,
) -> None:
    """A kubeconfig for the cluster; kubectl gets the token from `kupe auth get-token`."""
    with connect(profile, tenant, api_url) as client:
        document = client.clusters.kubeconfig(name)
        chosen_profile = client.settings.profile
    # kubectl runs the plugin from wherever it is: name this kupe, not whatever is on PATH.
    kubeconfig_file.use_executable(document, kubeconfig_file.kupe_executable())
    if chosen_profile:
        # Pin the profile, so switching `kupe config use` later cannot hand this cluster
        # another installation's token.
        _pin_profile(document, chosen_profile)
    if write is None and not merge:
        sys.stdout.write(yaml.safe_dump(document, sort_keys=False))
        return
    target = write or kubeconfig_file.default_path()
    try:
        document = kubeconfig_file.merge_into(target, document, force=force)
        kubeconfig_file.write(target, document)
    except (kubeconfig_file.KubeconfigFileError, OSError) as exc:
        fail(str(exc))
    note(f"Wrote context {document['current-context']} to {target}")


def _pin_profile(document: dict[str, object], profile: str) -> None:
    users = document.get("users")
    if not isinstance(users, list):
        return
    for user in users:
        exec_ = user.get("user", {}).get("exec") if isinstance(user, dict) else None
        if isinstance(exec_, dict) and isinstance(exec_.get("args"), list):
            exec_["args"] = [*exec_["args"], "--profile", profile]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="clusters")
