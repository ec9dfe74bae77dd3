"""Client settings: arguments, then KUPE_* environment variables, then a named profile.

Profiles live in `$XDG_CONFIG_HOME/kupe/config.toml` (default `~/.config/kupe/config.toml`),
written with mode 0600 because they may hold an API key:

```toml
current-profile = "prod"

[profiles.prod]
api-url = "https://kupe.example.com"
tenant = "acme"
api-key = "kupe_..."
```
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli_w

from kupe.sdk.errors import ConfigurationError

__all__ = [
    "DEFAULT_API_URL",
    "ClientSettings",
    "ConfigFile",
    "Profile",
    "config_path",
    "current_profile",
    "resolve_settings",
]

DEFAULT_API_URL = "http://127.0.0.1:8080"
ENV_API_URL = "KUPE_API_URL"
ENV_API_KEY = "KUPE_API_KEY"
ENV_TENANT = "KUPE_TENANT"
ENV_PROFILE = "KUPE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """One named set of connection settings; a field left out falls back to the default."""

    api_url: str | None = None
    tenant: str | None = None
    api_key: str | None = None


@dataclass(frozen=True)
class ClientSettings:
    """The settings a client runs with, after resolution."""

    api_url: str = DEFAULT_API_URL
    api_key: str | None = None
    tenant: str | None = None
    profile: str | None = None


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where config.toml lives, honouring XDG_CONFIG_HOME."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kupe" / "config.toml"


@dataclass
class ConfigFile:
    """The profiles file: which profile is current, and every profile by name."""

    path: Path
    current: str | None = None
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> ConfigFile:
        """Read the file; a missing file is an empty configuration."""
        path = path or config_path()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"Cannot read {path}: {exc}") from exc
        profiles: dict[str, Profile] = {}
        raw_profiles = data.get("profiles", {})
        if isinstance(raw_profiles, dict):
            for name, raw in raw_profiles.items():
                if isinstance(raw, dict):
                    profiles[name] = Profile(
                        api_url=_str(raw.get("api-url")),
                        tenant=_str(raw.get("tenant")),
                        api_key=_str(raw.get("api-key")),
                    )
        return cls(path, current=_str(data.get("current-profile")), profiles=profiles)

    def set_profile(
        self,
        name: str,
        *,
        api_url: str | None = None,
        tenant: str | None = None,
        api_key: str | None = None,
    ) -> Profile:
        """Create or update a profile; fields not given keep their value."""
        old = self.profiles.get(name, Profile())
        new = replace(
            old,
            api_url=api_url if api_url is not None else old.api_url,
            tenant=tenant if tenant is not None else old.tenant,
            api_key=api_key if api_key is not None else old.api_key,
        )
        self.profiles[name] = new
        if self.current is None:
            self.current = name
        return new

    def save(self) -> None:
        """Write the file atomically with mode 0600 (it may hold API keys)."""
        data: dict[str, object] = {}
        if self.current is not None:
            data["current-profile"] = self.current
        data["profiles"] = {
            name: {
                key: value
                for key, value in (
                    ("api-url", profile.api_url),
                    ("tenant", profile.tenant),
                    ("api-key", profile.api_key),
                )
                if value is not None
            }
            for name, profile in sorted(self.profiles.items())
        }
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config.", suffix=".toml")
        try:
            # mkstemp creates the file 0600, so the key is never readable by others.
            with os.fdopen(fd, "wb") as out:
                tomli_w.dump(data, out)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        os.chmod(self.path, 0o600)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def current_profile(
    environ: Mapping[str, str] | None = None, path: Path | None = None
) -> str | None:
    """The profile in force: KUPE_PROFILE, else the file's current profile, else none."""
    env = os.environ if environ is None else environ
    if env.get(ENV_PROFILE):
        return env[ENV_PROFILE]
    return ConfigFile.load(path or config_path(env)).current


def resolve_settings(
    *,
    api_url: str | None = None,
    api_key: str | None = None,
    tenant: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> ClientSettings:
    """Arguments win, then KUPE_API_URL / KUPE_API_KEY / KUPE_TENANT, then the named profile."""
    env = os.environ if environ is None else environ
    chosen = Profile()
    if profile is not None:
        config = ConfigFile.load(path or config_path(env))
        if profile not in config.profiles:
            raise ConfigurationError(
                f"No profile named {profile!r} in {config.path}; "
                "create it with `kupe config set-profile`"
            )
        chosen = config.profiles[profile]
    return ClientSettings(
        api_url=(api_url or env.get(ENV_API_URL) or chosen.api_url or DEFAULT_API_URL).rstrip("/"),
        api_key=api_key or env.get(ENV_API_KEY) or chosen.api_key,
        tenant=tenant or env.get(ENV_TENANT) or chosen.tenant,
        profile=profile,
    )
