"""Server settings, read from KUPE_* environment variables; every default works with zero setup."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything `kupe serve` and `kupe reconciler` can be told; names are an operator contract."""

    model_config = SettingsConfigDict(env_prefix="KUPE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Listen address of the API.")
    port: int = Field(8080, ge=0, le=65535, description="Listen port of the API.")
    data_dir: Path = Field(
        Path(".kupe"), description="Embedded database, bootstrap key and local state."
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file kupe.db in the data dir."
    )
    provider: Literal["simulated"] = Field(
        "simulated", description="Which provider provisions clusters."
    )
    cluster_domain: str = Field(
        "kupe.localhost", description="Cluster endpoints are https://<cluster>.<tenant>.<domain>."
    )
    sim_provision_seconds: float = Field(
        8.0, ge=0, description="Simulated provider: time from Provisioning to Running."
    )
    sim_upgrade_seconds: float = Field(
        5.0, ge=0, description="Simulated provider: time spent Upgrading."
    )
    sim_delete_seconds: float = Field(
        3.0, ge=0, description="Simulated provider: time spent Terminating."
    )
    sim_failure_rate: float = Field(
        0.0, ge=0, le=1, description="Simulated provider: fraction of calls failing transiently."
    )
    sim_fail_pattern: str = Field(
        "", description="Simulated provider: clusters whose name matches this regex fail."
    )
    sim_seed: int | None = Field(
        None, description="Simulated provider: seed for fault injection, for reproducible runs."
    )
    sim_state_file: Path | None = Field(
        None,
        description="Simulated provider: its durable 'cloud' state; default in the data dir. "
        "Replicas that share it share one simulated cloud.",
    )
    database_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="PostgreSQL: longest wait to connect, run one statement or get a pooled "
        "connection; while the database is away, requests answer 503 within about this long.",
    )
    reconciler_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`kupe reconciler`: serve /healthz, /readyz and /metrics on this port "
        "(at KUPE_HOST); unset serves nothing.",
    )
    reconciler: Literal["on", "off"] = Field(
        "on", description="`off` runs the API only (another process runs `kupe reconciler`)."
    )
    reconcile_workers: int = Field(
        32, ge=1, le=1024, description="Clusters reconciled concurrently per process."
    )
    reconcile_poll_seconds: float = Field(
        1.0, gt=0, description="How often the reconciler looks for due work without a wake-up."
    )
    resync_seconds: float = Field(
        300.0, gt=0, description="How often a settled cluster is observed again (drift check)."
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="How long a claim on a cluster lasts without a heartbeat."
    )
    retry_base_seconds: float = Field(
        1.0, gt=0, description="First retry delay after a transient provider error."
    )
    retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest retry delay after transient provider errors."
    )
    max_transient_failures: int = Field(
        10, ge=1, description="Consecutive transient failures after which provisioning Fails."
    )
    log_format: Literal["console", "json"] | None = Field(
        None, description="`console` on a TTY, else `json`."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of log lines."
    )
    rate_limit_rps: float = Field(
        200.0, gt=0, description="Sustained requests per second per client IP and credential."
    )
    rate_limit_burst: int = Field(
        400, ge=1, description="Requests a client may burst above the sustained rate."
    )
    auth_failure_allowance: int = Field(
        50,
        ge=1,
        description="Authentication failures one client IP may have before it must back off.",
    )
    auth_failure_window_seconds: float = Field(
        900.0,
        gt=0,
        description="Quiet time after which an IP's authentication failures are forgotten.",
    )
    auth_backoff_max_seconds: float = Field(
        300.0, gt=0, description="Longest an IP must wait after repeated authentication failures."
    )
    plans_file: Path | None = Field(
        None, description="YAML/JSON file overriding the built-in plan catalogue."
    )
    bootstrap_plan: str = Field(
        "enterprise", description="Plan of the `default` tenant bootstrapped on an empty database."
    )
    oidc_issuer: str | None = Field(None, description="Accept members' OIDC tokens from here.")
    oidc_audience: str | None = Field(None, description="Required `aud` of OIDC tokens.")
    oidc_jwks_url: str | None = Field(None, description="Where the issuer's signing keys are.")
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDRs whose X-Forwarded-For/-Proto are "
        "believed; default none (the peer address is the client).",
    )
    http_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest a client may pause while sending a request's headers or body.",
    )

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        # Without a required audience, tokens the issuer minted for any other application
        # would be accepted here.
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("KUPE_OIDC_AUDIENCE must be set when KUPE_OIDC_ISSUER is")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
        import ipaddress

        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        """KUPE_TRUSTED_PROXIES as a list (empty: trust no forwarding headers)."""
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    @field_validator("sim_fail_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @property
    def effective_database_url(self) -> str:
        """The database URL in force: explicit, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kupe.db').resolve()}"

    @property
    def effective_sim_state_file(self) -> Path:
        """Where the simulated provider keeps its cloud."""
        return self.sim_state_file or self.data_dir / "simulated-cloud.db"

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        """The log renderer: as configured, else by whether stderr is a terminal."""
        if self.log_format is not None:
            return self.log_format
        return "console" if sys.stderr.isatty() else "json"
