"""Console sessions: found by the hash of their id, with the key and tenant they act for."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select, update

from kupe.server.db.models import ApiKey, ConsoleSession, Tenant
from kupe.server.db.repositories.base import Repository, rowcount


class ConsoleSessionRepository(Repository):
    async def with_access(
        self, id_hash: str
    ) -> tuple[ConsoleSession, Tenant | None, ApiKey | None] | None:
        """The session, its live tenant and its API key (None where there is none), in one
        round trip and read fresh: a revoked key or a removed tenant shows at once."""
        stmt = (
            select(ConsoleSession, Tenant, ApiKey)
            .outerjoin(
                Tenant, (Tenant.id == ConsoleSession.tenant_id) & Tenant.removed_at.is_(None)
            )
            .outerjoin(ApiKey, ApiKey.id == ConsoleSession.api_key_id)
            .where(ConsoleSession.id_hash == id_hash)
            .execution_options(populate_existing=True)
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    def add(self, record: ConsoleSession) -> None:
        self.session.add(record)

    async def delete(self, id_hash: str) -> bool:
        result = await self.session.execute(
            delete(ConsoleSession)
            .where(ConsoleSession.id_hash == id_hash)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def touch(self, id_hash: str, now: datetime, *, unless_after: datetime) -> None:
        """Record activity (the idle timeout counts from here), at most once per interval."""
        await self.session.execute(
            update(ConsoleSession)
            .where(
                ConsoleSession.id_hash == id_hash,
                ConsoleSession.revoked_at.is_(None),
                ConsoleSession.last_seen_at <= unless_after,
            )
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )

    async def purge(self, *, expired_before: datetime, idle_before: datetime) -> int:
        """Delete sessions past their absolute expiry or idle too long, and revoked ones."""
        result = await self.session.execute(
            delete(ConsoleSession)
            .where(
                or_(
                    ConsoleSession.expires_at <= expired_before,
                    ConsoleSession.last_seen_at <= idle_before,
                    ConsoleSession.revoked_at.is_not(None),
                )
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(result)
