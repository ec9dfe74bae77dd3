"""API-key authentication and the caller's identity within a tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import AdminRequired, NotAMember, TenantSuspended, Unauthorized
from kupe.server.db.models import Tenant
from kupe.server.db.repository import ApiKeyRepository, TenantRepository

API_KEY_PATTERN = re.compile(r"\Akupe_([a-z0-9]{8})_([A-Za-z0-9_-]{43,128})\Z")
ROLES = ("admin", "readonly")
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class NewApiKey:
    id: str
    raw: str
    hash: str


def generate_api_key() -> NewApiKey:
    """A fresh key `kupe_<8>_<43 url-safe chars: 256 random bits>` and its stored hash."""
    short = "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
    raw = f"kupe_{short}_{secrets.token_urlsafe(32)}"
    return NewApiKey(id=f"ak-{short}", raw=raw, hash=hash_api_key(raw))


def hash_api_key(raw: str) -> str:
    """SHA-256 of the raw key: the key carries 256 random bits, so no salt or stretching."""
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling, in which tenant, with which role."""

    tenant: Tenant
    role: str
    actor: str  # member email, or apikey:<id>

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    def require_admin(self) -> None:
        """Writes need the admin role and an active tenant."""
        if self.role != "admin":
            raise AdminRequired()
        if self.tenant.phase == "Suspended":
            raise TenantSuspended()


class AuthService:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def authenticate(
        self, session: AsyncSession, authorization: str | None, tenant_name: str
    ) -> Principal:
        """Resolve a Bearer API key to a principal of `tenant_name`.

        401 for anything wrong with the credential itself; 403 when it is valid but belongs to
        another tenant, or the tenant does not exist (no tenant-name probing).
        """
        if not authorization:
            raise Unauthorized("Missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        match = API_KEY_PATTERN.match(token.strip())
        if match is None:
            raise Unauthorized("Invalid API key")
        key = await ApiKeyRepository(session).by_id(f"ak-{match.group(1)}")
        if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(token.strip())):
            raise Unauthorized("Invalid API key")
        if key.revoked_at is not None:
            raise Unauthorized("API key has been revoked")
        if key.expires_at is not None and key.expires_at <= self.clock.now():
            raise Unauthorized("API key has expired")
        tenant = await TenantRepository(session).by_name(tenant_name)
        if tenant is None or tenant.id != key.tenant_id:
            raise NotAMember()
        return Principal(tenant=tenant, role=key.role, actor=f"apikey:{key.id}")
