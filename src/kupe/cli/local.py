"""`kupe local`: the binaries of the local provider (real control planes on this machine).

`kupe local install` builds them from the Go module proxy into the cache (minutes per
Kubernetes minor, with live progress); `kupe local versions` says what is there;
`kupe local install-alertmanager` builds Alertmanager (tenants' alerting) into the same cache.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from kupe.server.providers.local import LocalSettings

app = typer.Typer(
    help="The local provider: Kubernetes binaries built on this machine.", no_args_is_help=True
)
_console = Console(stderr=True)
_OUTCOMES = {
    "built": "[green]built[/]",
    "installed": "already installed",
    "adopted": "already built, verified",
}


def _settings() -> LocalSettings:
    """The provider's settings from KUPE_LOCAL_* (as `kupe serve` reads them)."""
    from kupe.server.providers.local import PLUGIN, LocalSettings
    from kupe.server.providers.registry import ProviderConfigError, provider_settings

    prefix = PLUGIN.env_prefix
    section = {
        key[len(prefix) :].lower(): value
        for key, value in os.environ.items()
        if key.startswith(prefix)
    }
    try:
        settings = provider_settings(PLUGIN, section)
    except ProviderConfigError as exc:
        typer.echo(f"kupe: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    assert isinstance(settings, LocalSettings)
    return settings


class RichReporter:
    """Install progress: a live bar per component on a terminal, plain lines elsewhere."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}", justify="left"),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._began: dict[str, float] = {}
        self._last_line = 0.0

    def __enter__(self) -> RichReporter:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def started(self, label: str, total: int | None) -> None:
        self._began.setdefault(label, time.monotonic())
        if label in self._tasks:
            self.progress.update(self._tasks[label], total=total)
            return
        self._tasks[label] = self.progress.add_task(label, total=total, detail="")
        if not self.live:
            self.console.print(f"building {label} …")

    def advanced(self, label: str, done: int, detail: str) -> None:
        task = self._tasks.get(label)
        if task is not None:
            self.progress.update(task, completed=done, detail=detail[-60:])
        # Off a terminal, a line every 30 s says it is still going.
        if not self.live and time.monotonic() - self._last_line > 30:
            self._last_line = time.monotonic()
            self.console.print(f"  {label}: {done} packages")

    def finished(self, label: str, outcome: str) -> None:
        task = self._tasks.get(label)
        if task is not None:
            total = self.progress.tasks[task].total
            self.progress.update(task, completed=total or 0, detail=outcome)
        seconds = time.monotonic() - self._began.get(label, time.monotonic())
        took = f" in {seconds:.0f}s" if outcome == "built" else ""
        self.console.print(f"{label}: {_OUTCOMES.get(outcome, outcome)}{took}")


@app.command()
def install(
    versions: Annotated[
        str | None,
        typer.Option(
            "--versions",
            help="Kubernetes minors to build, comma-separated (default: KUPE_LOCAL_VERSIONS, "
            "else the newest two).",
        ),
    ] = None,
) -> None:
    """Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok."""
    from kupe.server.providers.local.binaries import BinaryCache
    from kupe.server.providers.local.install import Installer, InstallError, parse_versions

    settings = _settings()
    minors = parse_versions(versions) if versions else settings.versions
    began = time.monotonic()
    try:
        with RichReporter(_console) as reporter:
            Installer(BinaryCache(settings.cache_dir), reporter).install(minors)
    except InstallError as exc:
        typer.echo(f"kupe: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("kupe: interrupted; the next run builds that component again", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"Kubernetes {', '.join(minors)} ready in {settings.cache_dir} "
        f"({time.monotonic() - began:.0f}s)"
    )


@app.command("install-alertmanager")
def install_alertmanager_command() -> None:
    """Build alertmanager and amtool (v0.28.1) for tenants' alerting into the same cache."""
    from kupe.server.alertmanager.install import install_alertmanager
    from kupe.server.providers.local.install import InstallError

    settings = _settings()
    try:
        with RichReporter(_console) as reporter:
            install_alertmanager(settings.cache_dir, reporter)
    except InstallError as exc:
        typer.echo(f"kupe: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("kupe: interrupted; the next run builds Alertmanager again", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"Alertmanager ready in {settings.cache_dir}")


@app.command("versions")
def versions_command() -> None:
    """Which Kubernetes minors can be built, and which are installed."""
    from kupe.server.providers.local.binaries import (
        KUBERNETES_PATCHES,
        BinaryCache,
        minors_with_recipe,
    )

    settings = _settings()
    installed = set(BinaryCache(settings.cache_dir).installed_minors())
    recipes = set(minors_with_recipe())
    table = Table("MINOR", "PATCH", "RECIPE", "INSTALLED", box=None)
    for minor, patch in KUBERNETES_PATCHES.items():
        table.add_row(
            minor, patch, "yes" if minor in recipes else "-", "yes" if minor in installed else "-"
        )
    Console(file=sys.stdout).print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="local")
