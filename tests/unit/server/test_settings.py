"""Settings nested by concern, from today's flat KUPE_* names, nested names and keywords."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kupe.server.settings import Settings, describe_errors


@pytest.fixture(autouse=True)
def no_kupe_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KUPE_"):
            monkeypatch.delenv(name)


def test_flat_environment_names_land_in_their_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUPE_DATABASE_URL", "postgresql+asyncpg://kupe@db/kupe")
    monkeypatch.setenv("KUPE_DATABASE_TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("KUPE_RECONCILER", "off")
    monkeypatch.setenv("KUPE_RECONCILE_WORKERS", "4")
    monkeypatch.setenv("KUPE_RESYNC_SECONDS", "60")
    monkeypatch.setenv("KUPE_RATE_LIMIT_BURST", "9")
    monkeypatch.setenv("KUPE_SIM_PROVISION_SECONDS", "2")
    monkeypatch.setenv("KUPE_PORT", "9999")
    settings = Settings()
    assert settings.database.url == "postgresql+asyncpg://kupe@db/kupe"
    assert settings.database.timeout_seconds == 3
    assert (settings.reconciler.mode, settings.reconciler.workers) == ("off", 4)
    assert settings.reconciler.resync_seconds == 60
    assert settings.rate_limits.burst == 9
    assert settings.provider_section == {"provision_seconds": "2"}
    assert settings.port == 9999


def test_nested_names_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUPE_RECONCILER__LEASE_SECONDS", "12")
    monkeypatch.setenv("KUPE_OIDC__ISSUER", "https://id.example.com")
    monkeypatch.setenv("KUPE_OIDC__AUDIENCE", "kupe")
    settings = Settings()
    assert settings.reconciler.lease_seconds == 12
    assert (settings.oidc.issuer, settings.oidc.audience) == ("https://id.example.com", "kupe")


def test_keywords_take_the_flat_names_and_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KUPE_RECONCILE_WORKERS", "4")
    monkeypatch.setenv("KUPE_SIM_SEED", "1")
    settings = Settings(reconcile_workers=8, sim_seed=2, reconciler={"lease_seconds": 5})
    assert (settings.reconciler.workers, settings.reconciler.lease_seconds) == (8, 5)
    assert settings.provider_section == {"seed": 2}


def test_a_bad_provider_setting_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUPE_SIM_FAILURE_RATE", "2")
    with pytest.raises(ValidationError, match="KUPE_SIM_FAILURE_RATE: Input should be less"):
        Settings()


def test_an_unknown_provider_lists_those_installed() -> None:
    with pytest.raises(
        ValidationError, match=r"'nimbus' is not an installed provider \(.*simulated"
    ):
        Settings(provider="nimbus")


def test_a_bad_value_in_a_section_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(reconcile_workers=0)
    assert describe_errors(refused.value).startswith("KUPE_RECONCILE_WORKERS: Input should be")
    with pytest.raises(ValidationError, match="KUPE_OIDC_AUDIENCE"):
        Settings(oidc_issuer="https://id.example.com")
