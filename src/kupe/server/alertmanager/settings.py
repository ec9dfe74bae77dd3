"""Settings of tenants' alerting (the `alerting` section, KUPE_ALERTING__<FIELD>)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kupe.server.sealing import parse_key


def _default_cache_dir() -> Path:
    found = os.environ.get("KUPE_LOCAL_CACHE_DIR")
    return Path(found) if found else Path.home() / ".cache" / "kupe"


class AlertingSection(BaseModel):
    """KUPE_ALERTING__<FIELD>: tenants' Alertmanager configuration and its backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["auto", "embedded", "mimir", "none"] = Field(
        "auto",
        description="Where tenants' Alertmanager configuration is delivered: `embedded` (an "
        "Alertmanager Kupe runs on 127.0.0.1), `mimir` (Mimir's multi-tenant Alertmanager "
        "API), `none` (stored and checked only); `auto`: embedded when the Alertmanager "
        "binaries are installed, else none.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Where the Alertmanager binaries are (`kupe local install-alertmanager`); "
        "default KUPE_LOCAL_CACHE_DIR, else ~/.cache/kupe.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="32 bytes in base64 sealing tenants' alerting credentials in the database; "
        "default: <data dir>/server.key, made on first start. Replicas must share one.",
    )
    check_timeout_seconds: float = Field(
        10.0, gt=0, description="Longest one configuration check (amtool) may run."
    )
    check_concurrency: int = Field(
        4, ge=1, le=64, description="Configuration checks that may run at once per process."
    )
    embedded_port: int = Field(
        9093,
        ge=0,
        le=65535,
        description="Embedded backend: the Alertmanager's port on 127.0.0.1 (its API, where "
        "alerts are posted); 0 picks a free one.",
    )
    mimir_url: str | None = Field(
        None, description="Mimir backend: the base URL of Mimir's Alertmanager API."
    )
    mimir_token: SecretStr | None = Field(
        None, description="Mimir backend: a bearer token for its API, when it needs one."
    )
    timeout_seconds: float = Field(
        10.0, gt=0, description="Longest wait for one call to the alert backend."
    )
    resync_seconds: float = Field(
        300.0, gt=0, description="How often a delivered configuration is pushed again."
    )

    @field_validator("secret_key")
    @classmethod
    def _key_parses(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_key(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _mimir_complete(self) -> AlertingSection:
        if self.backend == "mimir" and not self.mimir_url:
            raise ValueError("KUPE_ALERTING__MIMIR_URL must be set when the backend is mimir")
        return self
