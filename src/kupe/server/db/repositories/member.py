"""Members of one tenant."""

from __future__ import annotations

from sqlalchemy import Select, delete, func, select, update

from kupe.server.db.models import Member
from kupe.server.db.outbox import note
from kupe.server.db.repositories.base import TenantScoped


class MemberRepository(TenantScoped):
    """Members have no resourceVersion of their own (they move their tenant's), so every write
    here notes the member for the outbox."""

    def _changed(self, email: str) -> None:
        note(self.session.sync_session, "member", (self.tenant_id, email))

    def add(self, member: Member) -> None:
        self.session.add(member)
        self._changed(member.email)

    def _base(self) -> Select[Member]:
        return select(Member).where(Member.tenant_id == self.tenant_id)

    async def list(self, *, after: str | None = None, limit: int | None = None) -> list[Member]:
        stmt = self._base().order_by(Member.email)
        if after is not None:
            stmt = stmt.where(Member.email > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def get(self, email: str) -> Member | None:
        """The member with this (already normalised) email."""
        stmt = self._base().where(Member.email == email)
        return (await self.session.scalars(stmt)).one_or_none()

    async def count_admins(self) -> int:
        stmt = (
            select(func.count())
            .select_from(Member)
            .where(Member.tenant_id == self.tenant_id, Member.role == "admin")
        )
        return int(await self.session.scalar(stmt) or 0)

    async def set_role(self, email: str, role: str) -> None:
        await self.session.execute(
            update(Member)
            .where(Member.tenant_id == self.tenant_id, Member.email == email)
            .values(role=role)
            .execution_options(synchronize_session=False)
        )
        self._changed(email)

    async def delete(self, email: str) -> None:
        await self.session.execute(
            delete(Member)
            .where(Member.tenant_id == self.tenant_id, Member.email == email)
            .execution_options(synchronize_session=False)
        )
        self._changed(email)
