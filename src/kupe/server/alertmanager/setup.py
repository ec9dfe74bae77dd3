"""Building the alerting pieces from settings: the server key, the checker and the backend."""

from __future__ import annotations

from pathlib import Path

from kupe.server.alertmanager.backends import AlertBackend, MimirBackend, NoBackend
from kupe.server.alertmanager.binaries import find_binaries
from kupe.server.alertmanager.checker import ConfigChecker
from kupe.server.alertmanager.embedded import EmbeddedAlertmanager
from kupe.server.alertmanager.settings import AlertingSection
from kupe.server.sealing import Sealer, load_or_create_key, parse_key


def server_sealer(settings: AlertingSection, data_dir: Path) -> Sealer:
    """The server key: KUPE_ALERTING__SECRET_KEY, else <data dir>/server.key."""
    if settings.secret_key is not None:
        return Sealer(parse_key(settings.secret_key.get_secret_value()))
    return Sealer(load_or_create_key(data_dir))


def alert_checker(settings: AlertingSection) -> ConfigChecker:
    """amtool from the cache; writes answer 503 while it is not installed."""
    return ConfigChecker(
        find_binaries(settings.cache_dir).amtool,
        timeout=settings.check_timeout_seconds,
        concurrency=settings.check_concurrency,
    )


def backend_name(settings: AlertingSection) -> str:
    """The backend in force: `auto` is embedded when Alertmanager is installed, else none."""
    if settings.backend != "auto":
        return settings.backend
    return "embedded" if find_binaries(settings.cache_dir).installed else "none"


def alert_backend(
    settings: AlertingSection, data_dir: Path, checker: ConfigChecker | None = None
) -> AlertBackend:
    """The backend in force; the embedded one checks each tenant's part with `checker` (one
    checker per process, so its concurrency bound holds for every check)."""
    name = backend_name(settings)
    if name == "embedded":
        return EmbeddedAlertmanager(
            find_binaries(settings.cache_dir).alertmanager,
            data_dir / "alertmanager",
            port=settings.embedded_port,
            timeout=settings.timeout_seconds,
            checker=checker or alert_checker(settings),
        )
    if name == "mimir":
        assert settings.mimir_url is not None  # the settings require it
        token = settings.mimir_token.get_secret_value() if settings.mimir_token else None
        return MimirBackend(settings.mimir_url, token=token, timeout=settings.timeout_seconds)
    return NoBackend()
