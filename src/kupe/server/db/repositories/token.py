"""Short-lived cluster tokens: issued per cluster and caller, looked up by id for TokenReview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from kupe.core.phases import TenantPhase
from kupe.server.db.models import ApiKey, Cluster, ClusterToken, Member, Tenant
from kupe.server.db.repositories.base import Repository


@dataclass(frozen=True)
class TokenHolder:
    """A token with what decides whether it still works: its cluster, tenant and holder."""

    token: ClusterToken
    cluster_live: bool
    tenant_open: bool
    holder_role: str | None  # the key's or member's current role; None when gone


class ClusterTokenRepository(Repository):
    def add(self, token: ClusterToken) -> None:
        self.session.add(token)

    async def forget_expired(self, before: datetime) -> None:
        await self.session.execute(
            delete(ClusterToken)
            .where(ClusterToken.expires_at < before)
            .execution_options(synchronize_session=False)
        )

    async def holder(self, token_id: str, now: datetime) -> TokenHolder | None:
        """The token `token_id` and, in the same round trip, whether its cluster is live (not
        being deleted), its tenant open, and its key (not revoked or expired) or member there."""
        key_role = (
            select(ApiKey.role)
            .where(
                ApiKey.id == ClusterToken.api_key_id,
                ApiKey.revoked_at.is_(None),
                (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
            )
            .scalar_subquery()
        )
        member_role = (
            select(Member.role)
            .where(
                Member.tenant_id == ClusterToken.tenant_id,
                Member.email == ClusterToken.member_email,
            )
            .scalar_subquery()
        )
        cluster_live = (
            select(Cluster.id)
            .where(
                Cluster.id == ClusterToken.cluster_id,
                Cluster.removed_at.is_(None),
                Cluster.deletion_requested_at.is_(None),
            )
            .exists()
        )
        tenant_open = (
            select(Tenant.id)
            .where(
                Tenant.id == ClusterToken.tenant_id,
                Tenant.removed_at.is_(None),
                Tenant.phase != TenantPhase.TERMINATING,
            )
            .exists()
        )
        stmt = select(ClusterToken, key_role, member_role, cluster_live, tenant_open).where(
            ClusterToken.id == token_id
        )
        row = (await self.session.execute(stmt)).one_or_none()
        if row is None:
            return None
        token, by_key, by_member, live, open_ = row
        role = by_key if token.api_key_id is not None else by_member
        return TokenHolder(token, bool(live), bool(open_), role)
