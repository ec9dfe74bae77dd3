"""Responses remembered for repeated Idempotency-Keys, per tenant."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from kupe.server.db.models import IdempotencyRecord
from kupe.server.db.repositories.base import TenantScoped


class IdempotencyRepository(TenantScoped):
    async def get(self, key: str, *, newer_than: datetime) -> IdempotencyRecord | None:
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == self.tenant_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.created_at > newer_than,
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def forget_older_than(self, key: str, moment: datetime) -> None:
        """Drop an expired record for `key` so the key can be used afresh."""
        await self.session.execute(
            delete(IdempotencyRecord)
            .where(
                IdempotencyRecord.tenant_id == self.tenant_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.created_at <= moment,
            )
            .execution_options(synchronize_session=False)
        )

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)
