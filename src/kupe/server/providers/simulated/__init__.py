"""The simulated provider plugin (the zero-setup default): settings, registration, public names."""

from __future__ import annotations

import random
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kupe.server.providers.base import Provider
from kupe.server.providers.registry import ProviderContext, ProviderPlugin
from kupe.server.providers.simulated.cloud import SimulatedProvider, SimulatedTimings
from kupe.server.providers.simulated.store import LedgerEntry, read_inventory, read_ledger


class SimulatedSettings(BaseModel):
    """The simulated provider's section: variables `KUPE_SIM_*`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provision_seconds: float = Field(8.0, ge=0, description="Time from Provisioning to Running.")
    upgrade_seconds: float = Field(5.0, ge=0, description="Time spent Upgrading.")
    delete_seconds: float = Field(3.0, ge=0, description="Time spent Terminating.")
    migrate_seconds: float = Field(
        5.0, ge=0, description="Time spent Migrating to a highly available control plane."
    )
    failure_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of provider calls failing transiently."
    )
    fail_pattern: str = Field("", description="Clusters whose name matches this regex fail.")
    seed: int | None = Field(None, description="Seed for fault injection, for reproducible runs.")
    state_file: Path | None = Field(
        None,
        description="Its durable 'cloud'; default in the data dir. Replicas that share it share "
        "one simulated cloud.",
    )

    @field_validator("fail_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


def state_file(settings: SimulatedSettings, data_dir: Path) -> Path:
    return settings.state_file or data_dir / "simulated-cloud.db"


def build(settings: SimulatedSettings, context: ProviderContext) -> Provider:
    return SimulatedProvider(
        state_file(settings, context.data_dir),
        clock=context.clock,
        metrics=context.metrics,
        cluster_domain=context.cluster_domain,
        timings=SimulatedTimings(
            provision_seconds=settings.provision_seconds,
            upgrade_seconds=settings.upgrade_seconds,
            delete_seconds=settings.delete_seconds,
            migrate_seconds=settings.migrate_seconds,
            failure_rate=settings.failure_rate,
            fail_pattern=settings.fail_pattern,
        ),
        rng=random.Random(settings.seed) if settings.seed is not None else None,  # noqa: S311
    )


def files(settings: SimulatedSettings, data_dir: Path) -> list[Path]:
    """The simulated cloud's file and SQLite's files beside it."""
    cloud = state_file(settings, data_dir)
    return [cloud.with_name(cloud.name + suffix) for suffix in ("", "-wal", "-shm")]


PLUGIN = ProviderPlugin(
    name="simulated",
    env_prefix="KUPE_SIM_",
    settings_model=SimulatedSettings,
    build=build,
    files=files,
)

__all__ = [
    "PLUGIN",
    "LedgerEntry",
    "SimulatedProvider",
    "SimulatedSettings",
    "SimulatedTimings",
    "read_inventory",
    "read_ledger",
]
