"""Cluster credentials: short-lived tokens valid for one cluster only, for the caller, with
the caller's role; and their check when the cluster's API server asks (TokenReview).

A token is `kct_<8>_<43 url-safe chars: 256 random bits>`; only its SHA-256 is stored. It is
never an API key (the shapes differ, so Kupe's API refuses it), and it stops working as soon
as its key is revoked or expires, its member is removed, its cluster is deleted or its tenant
is being deleted: the check reads all of that afresh (the API server caches answers ≤ 10 s).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import KupeError
from kupe.schemas.credential import ClusterCredential, CredentialRequest
from kupe.server.db.models import ClusterToken
from kupe.server.db.repositories.apikey import ApiKeyRepository
from kupe.server.db.repositories.token import ClusterTokenRepository
from kupe.server.services.auth import Principal
from kupe.server.services.cluster import ClusterService

TOKEN_PATTERN = re.compile(r"\Akct_([a-z0-9]{8})_([A-Za-z0-9_-]{43,128})\Z")
_ALPHABET = string.ascii_lowercase + string.digits
# Expired tokens are kept this long (for a TokenReview racing the expiry), then dropped.
_KEEP_EXPIRED = timedelta(hours=1)
# Inside a cluster, a role is a group; the cluster binds them to cluster-admin and view.
GROUPS = {"admin": "kupe:admin", "readonly": "kupe:readonly"}


class CredentialsUnsupported(KupeError):
    status = 501
    code = "CREDENTIALS_UNSUPPORTED"
    default_message = "This installation's clusters do not check Kupe credentials"


@dataclass(frozen=True)
class Reviewed:
    """Who a token authenticates inside its cluster."""

    username: str
    uid: str
    groups: tuple[str, ...]


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class CredentialService:
    def __init__(self, clusters: ClusterService, clock: Clock, *, supported: bool) -> None:
        self.clusters = clusters
        self.clock = clock
        self.supported = supported

    async def issue(
        self, session: AsyncSession, principal: Principal, name: str, body: CredentialRequest
    ) -> ClusterCredential:
        """A token for the caller on cluster `name` (any member; the role comes along)."""
        if not self.supported:
            raise CredentialsUnsupported()
        details = await self.clusters.connection_details(session, principal, name)
        row = await self.clusters.get(session, principal, name)
        now = self.clock.now()
        expires = now + timedelta(seconds=body.expiration_seconds)
        if principal.api_key_id is not None:
            key = await ApiKeyRepository(session).by_id(principal.api_key_id)
            if key is not None and key.expires_at is not None:
                expires = min(expires, key.expires_at)  # never outlive its credential
        short = "".join(secrets.choice(_ALPHABET) for _ in range(8))
        raw = f"kct_{short}_{secrets.token_urlsafe(32)}"
        tokens = ClusterTokenRepository(session)
        await tokens.forget_expired(now - _KEEP_EXPIRED)
        tokens.add(
            ClusterToken(
                id=f"ct-{short}",
                token_hash=_hash(raw),
                tenant_id=principal.tenant_id,
                cluster_id=row.id,
                api_key_id=principal.api_key_id,
                member_email=principal.member_email,
                role=principal.role,
                created_at=now,
                expires_at=expires,
            )
        )
        await session.flush()
        return ClusterCredential(
            endpoint=details.endpoint,
            certificate_authority=details.certificate_authority,
            token=raw,
            expires_at=expires.replace(microsecond=0),
        )

    async def review(self, session: AsyncSession, cluster_id: str, raw: str) -> Reviewed | None:
        """Who `raw` authenticates in cluster `cluster_id`, or None when it does not (any
        reason: never this cluster's, expired, revoked, deleted)."""
        match = TOKEN_PATTERN.match(raw)
        if match is None:
            return None
        found = await ClusterTokenRepository(session).holder(
            f"ct-{match.group(1)}", self.clock.now()
        )
        if found is None or not hmac.compare_digest(found.token.token_hash, _hash(raw)):
            return None
        token = found.token
        if (
            token.cluster_id != cluster_id
            or token.expires_at <= self.clock.now()
            or not found.cluster_live
            or not found.tenant_open
            or found.holder_role is None
        ):
            return None
        # A member demoted since keeps only the lesser role.
        role = "admin" if token.role == found.holder_role == "admin" else "readonly"
        who = f"apikey:{token.api_key_id}" if token.api_key_id else f"member:{token.member_email}"
        return Reviewed(username=f"kupe:{who}", uid=token.id, groups=(GROUPS[role],))
