"""Console sessions: an API key (or an OIDC member) exchanged for a server-side session.

The browser holds a random session id in an HttpOnly cookie; the database holds only its
hash. Each request re-checks the session and what it came from (the key, or the membership),
so revoking the key or removing the member ends the session's access at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import Forbidden, NotAMember, Unauthorized
from kupe.server.db.models import ConsoleSession, Tenant
from kupe.server.db.refs import TenantRef
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.db.repositories.console_session import ConsoleSessionRepository
from kupe.server.db.repositories.member import MemberRepository
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.auth import API_KEY_PATTERN, Principal, hash_api_key
from kupe.server.services.console_credential import SessionCredential

IDLE_TIMEOUT = timedelta(hours=8)
ABSOLUTE_TIMEOUT = timedelta(hours=24)
TOUCH_INTERVAL = timedelta(minutes=1)
_CSRF_CONTEXT = b"kupe-console-csrf-v1"


class CsrfRejected(Forbidden):
    code = "CSRF_TOKEN_INVALID"
    default_message = "A console write needs the page's CSRF token in X-CSRF-Token"


def hash_secret(raw: str) -> str:
    """SHA-256 of a 256-bit random secret: no salt or stretching needed."""
    return hashlib.sha256(raw.encode()).hexdigest()


def csrf_token_for(session_id: str) -> str:
    """The session's synchronizer token, derived from its id so the server can put it in
    every page without storing it; only its hash is kept."""
    digest = hmac.new(session_id.encode(), _CSRF_CONTEXT, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class IssuedSession:
    """A new session: the raw id goes into the cookie and nowhere else."""

    session_id: str
    csrf_token: str
    tenant: str
    expires_at: datetime


class ConsoleSessionService:
    def __init__(
        self,
        clock: Clock,
        *,
        idle_timeout: timedelta = IDLE_TIMEOUT,
        absolute_timeout: timedelta = ABSOLUTE_TIMEOUT,
    ) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self._touched: dict[str, datetime] = {}

    async def sign_in_with_key(self, session: AsyncSession, raw_key: str) -> IssuedSession:
        """Check `raw_key` as authentication does and open a session acting as that key."""
        match = API_KEY_PATTERN.match(raw_key.strip())
        if match is None:
            raise Unauthorized("That is not a Kupe API key (kupe_...)", field="apiKey")
        token = match.group(0)
        key = await ApiKeyRepository(session).by_id(f"ak-{match.group(1)}")
        if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(token)):
            raise Unauthorized("Invalid API key", field="apiKey")
        if key.revoked_at is not None:
            raise Unauthorized("API key has been revoked", field="apiKey")
        if key.expires_at is not None and key.expires_at <= self.clock.now():
            raise Unauthorized("API key has expired", field="apiKey")
        tenant = await TenantRepository(session).by_id(key.tenant_id)
        if tenant is None:
            raise Unauthorized("Invalid API key", field="apiKey")
        return await self._open(session, tenant, api_key_id=key.id)

    async def sign_in_member(
        self, session: AsyncSession, tenant_name: str, email: str
    ) -> IssuedSession:
        """Open a session for a member whose email the OIDC provider vouched for."""
        tenant = await TenantRepository(session).by_name(tenant_name)
        if tenant is None or await MemberRepository(session, tenant.id).get(email) is None:
            raise NotAMember()
        return await self._open(session, tenant, member_email=email)

    async def _open(
        self,
        session: AsyncSession,
        tenant: Tenant,
        *,
        api_key_id: str | None = None,
        member_email: str | None = None,
    ) -> IssuedSession:
        now = self.clock.now()
        repository = ConsoleSessionRepository(session)
        # Housekeeping rides on sign-ins: bounded by how many sessions ever ended.
        await repository.purge(expired_before=now, idle_before=now - self.idle_timeout)
        session_id = secrets.token_urlsafe(32)
        csrf = csrf_token_for(session_id)
        expires_at = now + self.absolute_timeout
        repository.add(
            ConsoleSession(
                id_hash=hash_secret(session_id),
                tenant_id=tenant.id,
                api_key_id=api_key_id,
                member_email=member_email,
                csrf_hash=hash_secret(csrf),
                created_at=now,
                expires_at=expires_at,
                last_seen_at=now,
            )
        )
        return IssuedSession(session_id, csrf, tenant.name, expires_at)

    async def principal(
        self, session: AsyncSession, credential: SessionCredential, tenant_name: str
    ) -> Principal:
        """The caller a session stands for in `tenant_name`: 401 when the session (or what it
        came from) no longer holds, 403 for another tenant or a write without the CSRF token."""
        id_hash = hash_secret(credential.session_id)
        found = await ConsoleSessionRepository(session).with_access(id_hash)
        if found is None:
            raise Unauthorized("Not signed in, or the session has ended")
        record, tenant, key = found
        now = self.clock.now()
        if record.revoked_at is not None:
            raise Unauthorized("The session has ended")
        if record.expires_at <= now or record.last_seen_at + self.idle_timeout <= now:
            raise Unauthorized("The session has expired; sign in again")
        if credential.write and not (
            credential.csrf_token is not None
            and hmac.compare_digest(hash_secret(credential.csrf_token), record.csrf_hash)
        ):
            raise CsrfRejected()
        if tenant is None or tenant.name != tenant_name:
            raise NotAMember()
        touch_due = now - record.last_seen_at >= TOUCH_INTERVAL
        ref = TenantRef.of(tenant)
        if record.api_key_id is not None:
            if key is None or key.revoked_at is not None:
                raise Unauthorized("The API key this session came from has been revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized("The API key this session came from has expired")
            key_touch = key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL
            return Principal(
                tenant=ref,
                role=key.role,
                actor=f"apikey:{key.id}",
                api_key_id=key.id,
                touch_due=key_touch,
                session=id_hash if touch_due else None,
            )
        email = record.member_email or ""
        member = await MemberRepository(session, tenant.id).get(email)
        if member is None:
            raise Unauthorized("You are no longer a member of this tenant")
        return Principal(
            tenant=ref,
            role=member.role,
            actor=member.email,
            session=id_hash if touch_due else None,
        )

    async def sign_out(self, session: AsyncSession, session_id: str) -> bool:
        """End the session on the server: the cookie no longer works anywhere."""
        return await ConsoleSessionRepository(session).delete(hash_secret(session_id))

    def claim_touch(self, principal: Principal) -> str | None:
        """The session whose last-seen time this request should write, at most once a minute
        per process."""
        if principal.session is None:
            return None
        now = self.clock.now()
        last = self._touched.get(principal.session)
        if last is not None and now - last < TOUCH_INTERVAL:
            return None
        if len(self._touched) >= 10_000:
            self._touched.clear()
        self._touched[principal.session] = now
        return principal.session

    async def touch(self, session: AsyncSession, id_hash: str) -> None:
        now = self.clock.now()
        await ConsoleSessionRepository(session).touch(
            id_hash, now, unless_after=now - TOUCH_INTERVAL
        )

    async def tenant_of(self, session: AsyncSession, credential: SessionCredential) -> str | None:
        """The name of the tenant a still-valid session belongs to (None when it has ended)."""
        found = await ConsoleSessionRepository(session).with_access(
            hash_secret(credential.session_id)
        )
        if found is None:
            return None
        record, tenant, _key = found
        now = self.clock.now()
        if (
            tenant is None
            or record.revoked_at is not None
            or record.expires_at <= now
            or record.last_seen_at + self.idle_timeout <= now
        ):
            return None
        return tenant.name
