"""Kupe's own OpenBao credential: a fixed token, or AppRole logins renewed and replaced."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from kupe.core.clock import Clock
from kupe.server.openbao.settings import OpenBaoSettings
from kupe.server.openbao.transport import Transport, require_int, require_text

__all__ = ["KupeCredential", "Lease"]

# Replace a token once this share of its lifetime has passed, well before it expires.
REFRESH_AFTER: Final = 2 / 3


@dataclass(frozen=True)
class Lease:
    """A token Kupe holds, with when to replace it (None: never)."""

    token: str = field(repr=False)
    refresh_at: datetime | None
    ttl: int
    renewable: bool = False

    @classmethod
    def starting(cls, now: datetime, token: str, ttl: int, *, renewable: bool) -> Lease:
        """A lease on `token` that lives `ttl` seconds from `now` (0: forever)."""
        refresh_at = now + timedelta(seconds=ttl * REFRESH_AFTER) if ttl > 0 else None
        return cls(token, refresh_at, ttl, renewable)

    def due(self, now: datetime) -> bool:
        """True once the token should be renewed or replaced."""
        return self.refresh_at is not None and now >= self.refresh_at


class KupeCredential:
    """Hands out a valid Kupe token: logs in, renews, and logs in again when refused."""

    def __init__(self, settings: OpenBaoSettings, http: Transport, clock: Clock) -> None:
        self._settings = settings
        self._http = http
        self._clock = clock
        self._lease: Lease | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"KupeCredential(approle={self.can_log_in_again})"

    @property
    def can_log_in_again(self) -> bool:
        """True with AppRole: a refused token can be replaced by a new login."""
        return self._settings.uses_approle

    @property
    def held(self) -> str | None:
        """The token held now, if any (for redaction)."""
        return self._lease.token if self._lease else None

    async def token(self) -> str:
        """A token that is not due for renewal."""
        lease = self._lease
        if lease is not None and not lease.due(self._clock.now()):
            return lease.token
        async with self._lock:
            lease = self._lease
            if lease is None or lease.due(self._clock.now()):
                self._lease = lease = await self._authenticate(lease)
            return lease.token

    def forget(self, token: str) -> None:
        """Drop `token` after OpenBao refused it, so the next `token()` logs in again."""
        # Only that token: a concurrent task may already have logged in again.
        if self._lease is not None and self._lease.token == token:
            self._lease = None

    async def release(self) -> None:
        """Revoke an AppRole login (best effort); a configured token is never revoked."""
        lease, self._lease = self._lease, None
        if lease is not None and self._settings.uses_approle:
            await self._http.revoke_self(lease.token)

    async def _authenticate(self, current: Lease | None) -> Lease:
        settings = self._settings
        now = self._clock.now()
        if current is not None and current.renewable:
            renewed = await self._http.renew_self(current.token, current.ttl)
            # A renewal capped by the token's max TTL is not worth keeping: log in afresh.
            if renewed is not None and renewed >= current.ttl * (1 - REFRESH_AFTER):
                return Lease.starting(now, current.token, renewed, renewable=True)
        if settings.role_id is not None and settings.secret_id is not None:
            auth = await self._http.approle_login(settings.role_id, settings.secret_id)
            what = "logging in to OpenBao with AppRole"
            ttl = require_int(auth.get("lease_duration"), what)
            token = require_text(auth.get("client_token"), what)
            return Lease.starting(now, token, ttl, renewable=auth.get("renewable") is True)
        assert settings.token is not None
        if current is not None:
            # A fixed token that cannot be renewed is used until OpenBao refuses it.
            return Lease(current.token, None, current.ttl)
        ttl, renewable = await self._http.lookup_self(settings.token)
        return Lease.starting(now, settings.token, ttl, renewable=renewable)
