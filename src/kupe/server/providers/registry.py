"""Providers are plugins: each registers a `ProviderPlugin` under the `kupe.providers` entry-point
group (see pyproject.toml), with a settings section of its own; `KUPE_PROVIDER` names one.
Adding a provider is a new module and one entry-point line, not an edit of the wiring."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from kupe.core.clock import Clock
from kupe.server.metrics import Metrics
from kupe.server.providers.base import Provider

ENTRY_POINT_GROUP = "kupe.providers"


class ProviderConfigError(ValueError):
    """The provider named by KUPE_PROVIDER is unknown, or its settings are invalid."""


@dataclass(frozen=True)
class ProviderContext:
    """What every provider may use from the process that runs it."""

    clock: Clock
    metrics: Metrics
    data_dir: Path
    cluster_domain: str
    # Where this installation's API listens, for clusters that call back into Kupe (the
    # TokenReview webhook of the local provider).
    api_url: str


@dataclass(frozen=True)
class ProviderPlugin:
    """A provider's registration: its name, its settings section and how to build it.

    `env_prefix` names the flat environment variables of its section (`KUPE_SIM_` makes
    `KUPE_SIM_PROVISION_SECONDS` the `provision_seconds` of the section)."""

    name: str
    env_prefix: str
    settings_model: type[BaseModel]
    build: Callable[[Any, ProviderContext], Provider]
    # The files the provider keeps outside the data dir (whose contents Kupe keeps private
    # anyway), given its settings and the data dir.
    files: Callable[[Any, Path], Sequence[Path]] = field(default=lambda _settings, _data: ())


@cache
def plugins() -> Mapping[str, ProviderPlugin]:
    """Every installed provider plugin, by name (read once: scanning the installed
    distributions' entry points takes milliseconds, and settings are built often)."""
    found: dict[str, ProviderPlugin] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        plugin = entry.load()
        if not isinstance(plugin, ProviderPlugin):
            raise ProviderConfigError(f"entry point {entry.value} is not a ProviderPlugin")
        found[plugin.name] = plugin
    return MappingProxyType(found)


def plugin_named(name: str) -> ProviderPlugin:
    available = plugins()
    if name not in available:
        known = ", ".join(sorted(available)) or "none"
        raise ProviderConfigError(f"KUPE_PROVIDER={name!r} is not an installed provider ({known})")
    return available[name]


def provider_settings(plugin: ProviderPlugin, section: Mapping[str, Any]) -> BaseModel:
    """The plugin's settings from its section; one clear line when they are invalid."""
    try:
        return plugin.settings_model.model_validate(dict(section))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ()))
        variable = f"{plugin.env_prefix}{where.upper()}" if where else plugin.env_prefix
        raise ProviderConfigError(f"{variable}: {error.get('msg')}") from None


def provider_files(name: str, section: Mapping[str, Any], data_dir: Path) -> Sequence[Path]:
    """The files provider `name` keeps (see ProviderPlugin.files)."""
    plugin = plugin_named(name)
    return plugin.files(provider_settings(plugin, section), data_dir)


def build_provider(name: str, section: Mapping[str, Any], context: ProviderContext) -> Provider:
    """The provider `name`, configured from its settings section."""
    plugin = plugin_named(name)
    return plugin.build(provider_settings(plugin, section), context)
