"""Client settings: arguments, then environment, then the named profile in config.toml."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kupe.sdk import Client, ConfigFile, ConfigurationError, current_profile, resolve_settings
from kupe.sdk.config import DEFAULT_API_URL, config_path


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("KUPE_API_URL", "KUPE_API_KEY", "KUPE_TENANT", "KUPE_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "xdg"


def test_config_path_honours_xdg(xdg: Path) -> None:
    assert config_path() == xdg / "kupe" / "config.toml"
    assert config_path({"HOME": "/home/u"}).name == "config.toml"


def test_profiles_round_trip_with_mode_0600(xdg: Path) -> None:
    config = ConfigFile.load()
    config.set_profile("prod", api_url="https://kupe.example.com", tenant="acme", api_key="k1")
    config.set_profile("dev", api_url="http://127.0.0.1:8080", tenant="dev")
    config.save()
    path = xdg / "kupe" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = ConfigFile.load()
    assert again.current == "prod"  # the first profile becomes current
    assert again.profiles["prod"].api_key == "k1"
    assert again.profiles["dev"].api_key is None
    # Updating keeps the fields not given.
    again.set_profile("prod", tenant="acme-2")
    again.save()
    assert ConfigFile.load().profiles["prod"].api_url == "https://kupe.example.com"
    assert ConfigFile.load().profiles["prod"].tenant == "acme-2"


def test_environment_overrides_the_profile_and_arguments_override_both(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ConfigFile.load()
    config.set_profile("prod", api_url="https://kupe.example.com/", tenant="acme", api_key="k1")
    config.save()
    settings = resolve_settings(profile="prod")
    assert (settings.api_url, settings.tenant, settings.api_key) == (
        "https://kupe.example.com",
        "acme",
        "k1",
    )
    monkeypatch.setenv("KUPE_TENANT", "other")
    monkeypatch.setenv("KUPE_API_KEY", "k-env")
    settings = resolve_settings(profile="prod")
    assert (settings.tenant, settings.api_key) == ("other", "k-env")
    assert settings.api_url == "https://kupe.example.com"
    settings = resolve_settings(profile="prod", tenant="third")
    assert settings.tenant == "third"


def test_without_profile_or_environment_the_defaults_apply(xdg: Path) -> None:
    with Client() as client:
        assert client.settings.api_url == DEFAULT_API_URL
        assert client.settings.tenant is None
        with pytest.raises(ConfigurationError, match="No tenant configured"):
            client.clusters.list()


def test_current_profile_comes_from_kupe_profile_then_the_file(
    xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert current_profile() is None
    config = ConfigFile.load()
    config.set_profile("a", tenant="ta")
    config.set_profile("b", tenant="tb")
    config.save()
    assert current_profile() == "a"
    monkeypatch.setenv("KUPE_PROFILE", "b")
    assert current_profile() == "b"


def test_unknown_profile_is_a_configuration_error(xdg: Path) -> None:
    with pytest.raises(ConfigurationError, match="No profile named 'nope'"):
        resolve_settings(profile="nope")


def test_a_broken_file_is_reported(xdg: Path) -> None:
    path = xdg / "kupe" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("current-profile = [unclosed")
    with pytest.raises(ConfigurationError, match="Cannot read"):
        ConfigFile.load()
