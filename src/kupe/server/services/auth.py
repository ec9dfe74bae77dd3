"""API-key authentication and the caller's identity within a tenant."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import (
    AdminRequired,
    NotAMember,
    NotFound,
    TenantSuspended,
    TenantTerminating,
    Unauthorized,
)
from kupe.core.phases import TenantPhase
from kupe.server.db.hotread import HotReads, KeyRecord
from kupe.server.db.models import ApiKey
from kupe.server.db.refs import ObjectVersion, TenantRef
from kupe.server.db.repositories.access import AccessRepository, NamedObject
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.db.repositories.member import MemberRepository
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.console_credential import Credential, SessionCredential
from kupe.server.services.oidc import OidcVerifier, looks_like_jwt

if TYPE_CHECKING:
    from kupe.server.services.console_session import ConsoleSessionService

API_KEY_PATTERN = re.compile(r"\Akupe_([a-z0-9]{8})_([A-Za-z0-9_-]{43,128})\Z")
API_KEY_ID_PATTERN = re.compile(r"\Aak-[a-z0-9]{8}\Z")
ROLES = ("admin", "readonly")
_ID_ALPHABET = string.ascii_lowercase + string.digits
TOUCH_INTERVAL = timedelta(minutes=1)
_TOUCHED_MAX = 100_000
# A stored key as the ORM loads it, or as the hot-read path does.
_K = TypeVar("_K", ApiKey, KeyRecord)


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

    tenant: TenantRef
    role: str
    actor: str  # member email, or apikey:<id>, or operator
    api_key_id: str | None = None
    # True when this request should record the key's lastUsedAt (at most once a minute).
    touch_due: bool = False
    # The platform operator acts on any tenant in any phase.
    operator: bool = False
    # The console session (its id's hash) whose last-seen time this request should write.
    session: str | None = None

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    @property
    def member_email(self) -> str | None:
        """The calling member's email, when the caller is a member rather than a key."""
        if self.api_key_id is not None or self.operator:
            return None
        return self.actor

    def require_admin(self) -> None:
        """Writes need the admin role and an active tenant."""
        self.require_admin_role()
        if self.operator:
            return
        if self.tenant.phase is TenantPhase.SUSPENDED:
            raise TenantSuspended()
        if self.tenant.phase is TenantPhase.TERMINATING:
            raise TenantTerminating()

    def require_security_admin(self) -> None:
        """Security operations (revoking a key, removing or demoting a member) need the admin
        role and work while the tenant is suspended: a leaked key must always be revocable."""
        self.require_admin_role()
        if not self.operator and self.tenant.phase is TenantPhase.TERMINATING:
            raise TenantTerminating()

    def require_admin_role(self) -> None:
        """Admin-only reads (API keys) need the role but work in any tenant phase."""
        if self.role != "admin":
            raise AdminRequired()


def _bearer(authorization: Credential) -> str:
    """The token of a `Bearer <token>` header; 401 otherwise."""
    if isinstance(authorization, SessionCredential):
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    if not authorization:
        raise Unauthorized("Missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return token


def _key_id(token: str) -> str:
    """The id of the API key `token` claims to be; 401 when it is not shaped like one."""
    match = API_KEY_PATTERN.match(token)
    if match is None:
        raise Unauthorized("Invalid API key")
    return f"ak-{match.group(1)}"


class AuthService:
    def __init__(
        self,
        clock: Clock,
        oidc: OidcVerifier | None = None,
        sessions: ConsoleSessionService | None = None,
    ) -> None:
        self.clock = clock
        self.oidc = oidc
        # The second credential: a console session cookie instead of an Authorization header.
        self.sessions = sessions
        # Keys whose lastUsedAt this process wrote recently: one write per key per minute.
        self._touched: dict[str, datetime] = {}

    async def authenticate(
        self, session: AsyncSession, authorization: Credential, tenant_name: str
    ) -> Principal:
        """Resolve a Bearer API key (or a member's OIDC token) to a principal of `tenant_name`.

        401 for anything wrong with the credential itself; 403 when it is valid but belongs to
        another tenant, or the tenant does not exist (no tenant-name probing). Every request
        reads the key afresh, so a revocation is effective at once on every replica.
        """
        if isinstance(authorization, SessionCredential) and self.sessions is not None:
            return await self.sessions.principal(session, authorization, tenant_name)
        token = _bearer(authorization)
        if self.oidc is not None and looks_like_jwt(token):
            return await self._member(session, token, tenant_name)
        found = await AccessRepository(session).key_with_tenant(_key_id(token), tenant_name)
        key = self._check_key(found[0] if found else None, token)
        tenant = found[1] if found else None
        return self._key_principal(key, TenantRef.of(tenant) if tenant else None)

    async def authenticate_for(
        self,
        session: AsyncSession,
        authorization: Credential,
        tenant_name: str,
        target: type[NamedObject],
        name: str,
    ) -> tuple[Principal, ObjectVersion | None]:
        """`authenticate` for a read of one object, also returning that object's version
        (None when the tenant has no such live object); for an API key, one round trip does
        both. The checks and their order are `authenticate`'s: a caller who may not see the
        tenant learns nothing about its objects."""
        if isinstance(authorization, SessionCredential):
            principal = await self.authenticate(session, authorization, tenant_name)
            version = await AccessRepository(session).object_version(
                target, principal.tenant_id, name
            )
            return principal, version
        token = _bearer(authorization)
        if self.oidc is not None and looks_like_jwt(token):
            principal = await self._member(session, token, tenant_name)
            version = await AccessRepository(session).object_version(
                target, principal.tenant_id, name
            )
            return principal, version
        found = await AccessRepository(session).key_with_tenant_and_object(
            _key_id(token), tenant_name, target, name
        )
        key = self._check_key(found[0] if found else None, token)
        assert found is not None
        tenant = TenantRef.of(found[1]) if found[1] is not None else None
        return self._key_principal(key, tenant), found[2]

    async def authenticate_hot(
        self,
        reads: HotReads,
        authorization: Credential,
        tenant_name: str,
        target: type[NamedObject] | None,
        name: str = "",
    ) -> tuple[Principal, ObjectVersion | None] | None:
        """`authenticate_for` (or, with no `name`, `authenticate`) on the hot-read path, for
        the reads behind every poll. None for a member's OIDC token, which takes the session
        path, as for a console session. Same checks, same order, same answers."""
        if isinstance(authorization, SessionCredential):
            return None
        token = _bearer(authorization)
        if self.oidc is not None and looks_like_jwt(token):
            return None
        found = await reads.key_with_tenant(_key_id(token), tenant_name, target, name)
        key = self._check_key(found.key if found else None, token)
        assert found is not None
        version = (
            None
            if found.object_id is None or found.object_resource_version is None
            else ObjectVersion(found.object_id, found.object_resource_version, name)
        )
        return self._key_principal(key, found.tenant), version

    def _check_key(self, key: _K | None, token: str) -> _K:
        """401 unless `key` is the stored form of `token`, not revoked and not expired."""
        if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(token)):
            raise Unauthorized("Invalid API key")
        if key.revoked_at is not None:
            raise Unauthorized("API key has been revoked")
        if key.expires_at is not None and key.expires_at <= self.clock.now():
            raise Unauthorized("API key has expired")
        return key

    def _key_principal(self, key: ApiKey | KeyRecord, tenant: TenantRef | None) -> Principal:
        """403 unless the key belongs to `tenant`."""
        if tenant is None or tenant.id != key.tenant_id:
            raise NotAMember()
        now = self.clock.now()
        touch_due = key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL
        return Principal(
            tenant=tenant,
            role=key.role,
            actor=f"apikey:{key.id}",
            api_key_id=key.id,
            touch_due=touch_due,
        )

    async def _member(self, session: AsyncSession, token: str, tenant_name: str) -> Principal:
        assert self.oidc is not None
        email = await self.oidc.email(token)
        tenants = TenantRepository(session)
        tenant = await tenants.by_name(tenant_name)
        if tenant is None:
            if await tenants.removed_owned_by(tenant_name, email):
                # Its owner, who deleted it, learns it is gone (the hosted API's 404).
                raise NotFound(f"Tenant {tenant_name!r} has been deleted")
            raise NotAMember()
        member = await MemberRepository(session, tenant.id).get(email)
        if member is None:
            raise NotAMember()
        return Principal(tenant=TenantRef.of(tenant), role=member.role, actor=member.email)

    def claim_touch(self, principal: Principal) -> str | None:
        """The key whose lastUsedAt this request should write, if any; claims it for a minute
        so concurrent requests with the same key do not all write."""
        key_id = principal.api_key_id
        if key_id is None or not principal.touch_due:
            return None
        now = self.clock.now()
        last = self._touched.get(key_id)
        if last is not None and now - last < TOUCH_INTERVAL:
            return None
        if len(self._touched) >= _TOUCHED_MAX:
            stale = [k for k, at in self._touched.items() if now - at >= TOUCH_INTERVAL]
            for k in stale or list(self._touched):
                del self._touched[k]
        self._touched[key_id] = now
        return key_id

    async def record_use(self, session: AsyncSession, key_id: str) -> None:
        """Write lastUsedAt unless another request (or replica) did so in the last minute."""
        now = self.clock.now()
        await ApiKeyRepository(session).touch(key_id, now, unless_after=now - TOUCH_INTERVAL)
