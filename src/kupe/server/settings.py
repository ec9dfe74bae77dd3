"""Server settings, nested by concern; every default works with zero setup.

They come from `KUPE_*` environment variables. The names operators already use stay valid
(`KUPE_DATABASE_URL`, `KUPE_RECONCILE_WORKERS`, `KUPE_SIM_PROVISION_SECONDS`, ...: the
`FLAT_NAMES` table maps each to its place), and every nested field can also be named
`KUPE_<SECTION>__<FIELD>`. A provider's section holds what its plugin reads: the variables
with the plugin's prefix (`KUPE_SIM_`, `KUPE_LOCAL_`). Code and tests may pass the same flat
names as keyword arguments: `Settings(database_url=..., sim_provision_seconds=8)`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kupe.server.alertmanager.settings import AlertingSection
from kupe.server.audit_settings import AuditSettings
from kupe.server.billing.settings import BillingSettings
from kupe.server.event_settings import EventsSettings
from kupe.server.openbao.settings import OpenBaoSettings
from kupe.server.providers.registry import plugins, provider_settings
from kupe.server.webhooks.settings import WebhookSettings

ENV_PREFIX = "KUPE_"


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(Section):
    url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file kupe.db in the data dir."
    )
    timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="PostgreSQL: longest wait to connect, run one statement or get a pooled "
        "connection; while the database is away, requests answer 503 within about this long.",
    )


class ReconcilerSettings(Section):
    mode: Literal["on", "off"] = Field(
        "on", description="`off` runs the API only (another process runs `kupe reconciler`)."
    )
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`kupe reconciler`: serve /healthz, /readyz and /metrics on this port "
        "(at KUPE_HOST); unset serves nothing.",
    )
    workers: int = Field(32, ge=1, le=1024, description="Items reconciled concurrently.")
    poll_seconds: float = Field(
        1.0, gt=0, description="How often the reconciler looks for due work without a wake-up."
    )
    resync_seconds: float = Field(
        300.0, gt=0, description="How often a settled cluster is observed again (drift check)."
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="How long a claim on an item lasts without a heartbeat."
    )
    retry_base_seconds: float = Field(
        1.0, gt=0, description="First retry delay after a transient error."
    )
    retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest retry delay after transient errors."
    )
    max_transient_failures: int = Field(
        10, ge=1, description="Consecutive transient failures after which provisioning Fails."
    )


class RateLimitSettings(Section):
    rps: float = Field(
        200.0, gt=0, description="Sustained requests per second per client IP and credential."
    )
    burst: int = Field(400, ge=1, description="Requests a client may burst above the rate.")
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


class OidcSettings(Section):
    issuer: str | None = Field(None, description="Accept members' OIDC tokens from here.")
    audience: str | None = Field(None, description="Required `aud` of OIDC tokens.")
    jwks_url: str | None = Field(None, description="Where the issuer's signing keys are.")
    client_id: str | None = Field(
        None, description="The console's OIDC client id (sign-in); default: the audience."
    )
    client_secret: SecretStr | None = Field(
        None, description="The console's OIDC client secret, when the provider requires one."
    )

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        # Without a required audience, tokens the issuer minted for any other application
        # would be accepted here.
        if self.issuer and not self.audience:
            raise ValueError("KUPE_OIDC_AUDIENCE must be set when KUPE_OIDC_ISSUER is")
        return self


class HttpSettings(Section):
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDRs whose X-Forwarded-For/-Proto are "
        "believed; default none (the peer address is the client).",
    )
    read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest a client may pause while sending a request's headers or body.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_parse(cls, value: str) -> str:
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


class OpenBaoSection(Section):
    addr: str | None = Field(
        None, description="OpenBao for managed secrets, e.g. http://127.0.0.1:8200; unset: off."
    )
    token: SecretStr | None = Field(None, description="Kupe's OpenBao token (or use AppRole).")
    role_id: str | None = Field(None, description="AppRole role id of Kupe's credential.")
    secret_id: SecretStr | None = Field(None, description="AppRole secret id of Kupe's credential.")
    timeout_seconds: float = Field(10.0, gt=0, description="Longest wait for one OpenBao call.")
    resync_seconds: float = Field(
        60.0, gt=0, description="How often a synced secret is checked for a new KV version."
    )

    @model_validator(mode="after")
    def _credential(self) -> OpenBaoSection:
        if self.addr and not self.token and not (self.role_id and self.secret_id):
            raise ValueError(
                "KUPE_OPENBAO_ADDR needs KUPE_OPENBAO_TOKEN or KUPE_OPENBAO_ROLE_ID and "
                "KUPE_OPENBAO_SECRET_ID"
            )
        self.client_settings()  # an unusable address or credential is refused at start-up
        return self

    def client_settings(self) -> OpenBaoSettings | None:
        """What Kupe's OpenBao client is built from; None when managed secrets are off."""
        if not self.addr:
            return None
        token = self.token.get_secret_value() if self.token else None
        secret_id = self.secret_id.get_secret_value() if self.secret_id else None
        return OpenBaoSettings(
            address=self.addr,
            token=token or None,
            role_id=None if token else self.role_id,
            secret_id=None if token else secret_id,
            timeout=self.timeout_seconds,
        )


SECTIONS = (
    "database",
    "reconciler",
    "rate_limits",
    "oidc",
    "http",
    "openbao",
    "alerting",
    "billing",
    "events",
    "audit",
    "webhooks",
)
# The flat names operators use (KUPE_<NAME>), and where each lives.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    "database_url": ("database", "url"),
    "database_timeout_seconds": ("database", "timeout_seconds"),
    "reconciler": ("reconciler", "mode"),
    "reconciler_port": ("reconciler", "port"),
    "reconcile_workers": ("reconciler", "workers"),
    "reconcile_poll_seconds": ("reconciler", "poll_seconds"),
    "resync_seconds": ("reconciler", "resync_seconds"),
    "lease_seconds": ("reconciler", "lease_seconds"),
    "retry_base_seconds": ("reconciler", "retry_base_seconds"),
    "retry_max_seconds": ("reconciler", "retry_max_seconds"),
    "max_transient_failures": ("reconciler", "max_transient_failures"),
    "rate_limit_rps": ("rate_limits", "rps"),
    "rate_limit_burst": ("rate_limits", "burst"),
    "auth_failure_allowance": ("rate_limits", "auth_failure_allowance"),
    "auth_failure_window_seconds": ("rate_limits", "auth_failure_window_seconds"),
    "auth_backoff_max_seconds": ("rate_limits", "auth_backoff_max_seconds"),
    "oidc_issuer": ("oidc", "issuer"),
    "oidc_audience": ("oidc", "audience"),
    "oidc_jwks_url": ("oidc", "jwks_url"),
    "trusted_proxies": ("http", "trusted_proxies"),
    "openbao_addr": ("openbao", "addr"),
    "openbao_token": ("openbao", "token"),
    "openbao_role_id": ("openbao", "role_id"),
    "openbao_secret_id": ("openbao", "secret_id"),
    "openbao_timeout_seconds": ("openbao", "timeout_seconds"),
    "secret_resync_seconds": ("openbao", "resync_seconds"),
    "http_read_timeout_seconds": ("http", "read_timeout_seconds"),
    "oidc_client_id": ("oidc", "client_id"),
    "oidc_client_secret": ("oidc", "client_secret"),
    "webhook_allow_private": ("webhooks", "allow_private"),
    "events_retention_days": ("events", "retention_days"),
    "events_heartbeat_seconds": ("events", "heartbeat_seconds"),
    "events_poll_seconds": ("events", "poll_seconds"),
    "events_watcher_queue": ("events", "watcher_queue"),
}
_TOP_LEVEL = (
    "host",
    "port",
    "data_dir",
    "provider",
    "cluster_domain",
    "log_format",
    "log_level",
    "plans_file",
    "bootstrap_plan",
)
_NESTED = re.compile(rf"\A{ENV_PREFIX}([A-Z0-9_]+?)__([A-Z0-9_]+)\Z")


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    """Move flat names (and provider-prefixed ones) into their sections."""
    out: dict[str, Any] = {}
    flat: dict[str, dict[str, Any]] = {}
    # `sim_` for the plugin whose variables start with KUPE_SIM_, and so on.
    prefixes = {p.env_prefix.removeprefix(ENV_PREFIX).lower(): p.name for p in plugins().values()}
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        elif key in FLAT_NAMES:
            section, field = FLAT_NAMES[key]
            flat.setdefault(section, {})[field] = value
        elif key not in _TOP_LEVEL and (
            plugin := next(((p, n) for p, n in prefixes.items() if key.startswith(p)), None)
        ):
            prefix, name = plugin
            flat.setdefault(f"providers.{name}", {})[key.removeprefix(prefix)] = value
        else:
            out[key] = value
    for where, fields in flat.items():
        if where.startswith("providers."):
            name = where.removeprefix("providers.")
            sections = out.setdefault("providers", {})
            # Flat names win: after the sources are merged, they are the caller's own.
            sections[name] = {**sections.get(name, {}), **fields}
        else:
            out[where] = {**out.get(where, {}), **fields}
    return out


class _Environment(PydanticBaseSettingsSource):
    """KUPE_* variables: flat names, KUPE_<SECTION>__<FIELD>, and providers' prefixed names."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads everything at once

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for name, value in os.environ.items():
            if not name.startswith(ENV_PREFIX) or value == "":
                continue
            match = _NESTED.match(name)
            if match is not None:
                section, field = match.group(1).lower(), match.group(2).lower()
                nested.setdefault(section, {})[field] = value
                continue
            found[name.removeprefix(ENV_PREFIX).lower()] = value
        values = _nest(found)
        for section, fields in nested.items():
            target = values.setdefault(section, {})
            if isinstance(target, dict):
                target.update(fields)
        return values


def describe_errors(exc: ValidationError) -> str:
    """A settings error in the operator's words: the variable to fix, and what is wrong."""
    flat = {place: name for name, place in FLAT_NAMES.items()}
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        if not loc:
            problems.append(message)
            continue
        name = flat.get((loc[0], loc[1])) if len(loc) >= 2 else None
        name = name or "_".join(loc)
        problems.append(f"{ENV_PREFIX}{name.upper()}: {message}")
    return "; ".join(problems)


class Settings(BaseSettings):
    """Everything `kupe serve` and `kupe reconciler` can be told; names are an operator contract."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Listen address of the API.")
    port: int = Field(8080, ge=0, le=65535, description="Listen port of the API.")
    data_dir: Path = Field(
        Path(".kupe"), description="Embedded database, bootstrap key and local state."
    )
    provider: str = Field("simulated", description="Which provider plugin provisions clusters.")
    cluster_domain: str = Field(
        "kupe.localhost", description="Cluster endpoints are https://<cluster>.<tenant>.<domain>."
    )
    log_format: Literal["console", "json"] | None = Field(
        None, description="`console` on a TTY, else `json`."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Minimum level of log lines."
    )
    plans_file: Path | None = Field(
        None, description="YAML/JSON file overriding the built-in plan catalogue."
    )
    bootstrap_plan: str = Field(
        "enterprise", description="Plan of the `default` tenant bootstrapped on an empty database."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    reconciler: ReconcilerSettings = Field(default_factory=ReconcilerSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    openbao: OpenBaoSection = Field(default_factory=OpenBaoSection)
    alerting: AlertingSection = Field(default_factory=AlertingSection)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    providers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Each provider plugin's section, by plugin name (see its env prefix).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _Environment(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        return _nest(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _provider_section_valid(self) -> Settings:
        # A bad provider setting stops the process at start, with the variable's name.
        from kupe.server.providers.registry import plugin_named

        provider_settings(plugin_named(self.provider), self.provider_section)
        return self

    @property
    def provider_section(self) -> dict[str, Any]:
        """The chosen provider's raw settings section."""
        return dict(self.providers.get(self.provider, {}))

    @property
    def effective_database_url(self) -> str:
        """The database URL in force: explicit, or the embedded SQLite file."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kupe.db').resolve()}"

    @property
    def api_url(self) -> str:
        """Where this installation's API listens, as a URL for clients on this machine."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        """The log renderer: as configured, else by whether stderr is a terminal."""
        if self.log_format is not None:
            return self.log_format
        return "console" if sys.stderr.isatty() else "json"
