"""The shared base of tenant-facing repositories: every statement starts tenant-scoped."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


class Repository:
    """Queries on one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session


class TenantScoped(Repository):
    """Queries on one session, within one tenant."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        super().__init__(session)
        self.tenant_id = tenant_id


def rowcount(result: object) -> int:
    """Rows an UPDATE or DELETE touched (typed access to the driver's count)."""
    return int(getattr(result, "rowcount", 0) or 0)
