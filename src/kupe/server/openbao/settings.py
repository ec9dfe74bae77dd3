"""How Kupe reaches and authenticates to OpenBao; built by the caller from Kupe's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from kupe.server.openbao.paths import DEFAULT_MOUNT_PREFIX, validate_mount_prefix

__all__ = ["OpenBaoSettings"]


def _credential_problem(value: str, what: str) -> str | None:
    # Checked so a stray newline from an env file fails here, not inside an HTTP header
    # (where the library's error message could echo it).
    if not value:
        return f"{what} is empty"
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        return f"{what} contains whitespace, control or non-ASCII characters"
    return None


@dataclass(frozen=True)
class OpenBaoSettings:
    """Address, Kupe's credential (a token, or an AppRole role_id + secret_id) and limits.

    Credentials are left out of `repr`, so logging the settings shows none of them.
    """

    address: str
    token: str | None = field(default=None, repr=False)
    role_id: str | None = field(default=None, repr=False)
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    # Per HTTP request; one call makes a few requests at most.
    timeout: float = 10.0
    mount_prefix: str = DEFAULT_MOUNT_PREFIX
    # Lifetime of the per-tenant read tokens Kupe creates; they are replaced after 2/3 of it.
    reader_token_ttl: timedelta = timedelta(minutes=30)
    # PEM bundle to verify an https OpenBao; None uses the system's trust store.
    ca_file: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.address)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("the OpenBao address must be an http:// or https:// URL")
        if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
            raise ValueError("the OpenBao address must be scheme://host[:port] only")
        approle = self.role_id is not None or self.secret_id is not None
        if (self.token is None) == (not approle):
            raise ValueError("give OpenBao either a token or an AppRole role_id and secret_id")
        if approle and (self.role_id is None or self.secret_id is None):
            raise ValueError("OpenBao AppRole needs both role_id and secret_id")
        for value, what in (
            (self.token, "the OpenBao token"),
            (self.role_id, "the OpenBao role_id"),
            (self.secret_id, "the OpenBao secret_id"),
        ):
            problem = None if value is None else _credential_problem(value, what)
            if problem:
                raise ValueError(problem)
        if not self.approle_mount or not self.approle_mount.replace("-", "").isalnum():
            raise ValueError("approle_mount must be letters, digits and '-'")
        if not self.timeout > 0:
            raise ValueError("the OpenBao timeout must be positive")
        if self.reader_token_ttl < timedelta(seconds=30):
            raise ValueError("reader_token_ttl must be at least 30 seconds")
        validate_mount_prefix(self.mount_prefix)

    @property
    def uses_approle(self) -> bool:
        """True when Kupe logs in with AppRole (and can log in again), not a fixed token."""
        return self.token is None
