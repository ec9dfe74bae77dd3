"""Managed secrets of one tenant that the API can see (not yet removed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update

from kupe.server.db.models import ManagedSecret
from kupe.server.db.refs import ObjectVersion
from kupe.server.db.repositories.base import TenantScoped, rowcount


class SecretRepository(TenantScoped):
    def _live(self) -> tuple[ColumnElement[bool], ...]:
        return (ManagedSecret.tenant_id == self.tenant_id, ManagedSecret.removed_at.is_(None))

    def _base(self) -> Select[ManagedSecret]:
        return select(ManagedSecret).where(*self._live())

    async def get(self, name: str) -> ManagedSecret | None:
        stmt = (
            self._base().where(ManagedSecret.name == name).execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def list(
        self, *, after: str | None = None, limit: int | None = None
    ) -> list[ManagedSecret]:
        stmt = self._base().order_by(ManagedSecret.name)
        if after is not None:
            stmt = stmt.where(ManagedSecret.name > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return list((await self.session.scalars(stmt)).all())

    async def version(self, name: str) -> ObjectVersion | None:
        stmt = select(ManagedSecret.id, ManagedSecret.resource_version).where(
            *self._live(), ManagedSecret.name == name
        )
        row = (await self.session.execute(stmt)).one_or_none()
        return None if row is None else ObjectVersion(row[0], row[1], name)

    def add(self, secret: ManagedSecret) -> None:
        self.session.add(secret)

    async def compare_and_set(
        self, secret_id: str, expected_version: int, values: Mapping[str, Any]
    ) -> bool:
        """Write `values` only if the row still has `expected_version`."""
        result = await self.session.execute(
            update(ManagedSecret)
            .where(
                ManagedSecret.id == secret_id,
                ManagedSecret.tenant_id == self.tenant_id,
                ManagedSecret.resource_version == expected_version,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0
