"""`kupe config ...`: named connection profiles in config.toml (mode 0600)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from kupe.cli.output import (
    EXIT_USAGE,
    OutputFormat,
    OutputOpt,
    dump,
    errors_reported,
    fail,
    new_table,
    note,
    render,
)
from kupe.sdk import ConfigFile, current_profile
from kupe.sdk.config import DEFAULT_API_URL

app = typer.Typer(help="Connection profiles (~/.config/kupe/config.toml).", no_args_is_help=True)

ProfileName = Annotated[str, typer.Argument(help="Profile name.")]


def mask(key: str | None) -> str:
    """Enough of a key to recognise it, not enough to use it."""
    if not key:
        return "-"
    parts = key.split("_")
    return f"{parts[0]}_{parts[1]}_…" if len(parts) >= 3 else "…"


def _load() -> ConfigFile:
    with errors_reported():
        return ConfigFile.load()


@app.command("set-profile")
def set_profile(
    name: ProfileName,
    api_url: Annotated[str | None, typer.Option("--api-url", help="API base URL.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant name.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="API key; '-' reads it from stdin (keeps it out of ps)."),
    ] = None,
) -> None:
    """Create or update a profile; the first one becomes current."""
    if api_key == "-":
        api_key = sys.stdin.readline().strip()
        if not api_key:
            fail("no API key on stdin", EXIT_USAGE)
    config = _load()
    created = name not in config.profiles
    config.set_profile(name, api_url=api_url, tenant=tenant, api_key=api_key)
    with errors_reported():
        try:
            config.save()
        except OSError as exc:
            fail(f"cannot write {config.path}: {exc.strerror}")
    note(f"Profile {name} {'created' if created else 'updated'} in {config.path}")
    if config.current == name:
        note(f"Profile {name} is current")


@app.command("use")
def use_profile(name: ProfileName) -> None:
    """Make a profile current."""
    config = _load()
    if name not in config.profiles:
        known = ", ".join(sorted(config.profiles)) or "none yet"
        fail(f"no profile named {name!r} (profiles: {known})", EXIT_USAGE)
    config.current = name
    try:
        config.save()
    except OSError as exc:
        fail(f"cannot write {config.path}: {exc.strerror}")
    note(f"Now using profile {name}")


@app.command("list")
def list_profiles(output: OutputOpt = OutputFormat.table) -> None:
    """List profiles; * marks the one in force (KUPE_PROFILE overrides the file)."""
    config = _load()
    with errors_reported():
        active = current_profile()
    if output is not OutputFormat.table:
        dump(
            {
                "current": active,
                "profiles": {
                    name: {"apiUrl": p.api_url, "tenant": p.tenant, "apiKey": mask(p.api_key)}
                    for name, p in sorted(config.profiles.items())
                },
            },
            output,
        )
        return
    table = new_table("", "NAME", "API URL", "TENANT", "API KEY")
    for name, p in sorted(config.profiles.items()):
        table.add_row(
            "*" if name == active else "",
            name,
            p.api_url or DEFAULT_API_URL,
            p.tenant or "-",
            mask(p.api_key),
        )
    render(table)


@app.command("delete-profile")
def delete_profile(name: ProfileName) -> None:
    """Remove a profile."""
    config = _load()
    if config.profiles.pop(name, None) is None:
        fail(f"no profile named {name!r}", EXIT_USAGE)
    if config.current == name:
        config.current = None
    try:
        config.save()
    except OSError as exc:
        fail(f"cannot write {config.path}: {exc.strerror}")
    note(f"Profile {name} deleted")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")
