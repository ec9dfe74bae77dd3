"""Operator actions behind `kupe admin ...`: run against the database, server running or not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from kupe.core.clock import SystemClock
from kupe.server.db.engine import Database
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.tenant import IssuedKey, TenantService
from kupe.server.services.views import api_key_view, tenant_view
from kupe.server.settings import Settings


class Admin:
    def __init__(self, db: Database, tenants: TenantService) -> None:
        self.db = db
        self.tenants = tenants

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Admin]:
        db = Database(settings.effective_database_url, pool_size=2)
        try:
            await db.upgrade()
            plans = PlanCatalogue.load(settings.plans_file)
            yield cls(db, TenantService(db, plans, SystemClock()))
        finally:
            await db.dispose()

    async def create_tenant(
        self, name: str, display_name: str, contact_email: str, plan: str
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            tenant, key = await self.tenants.create_tenant(
                session,
                name=name,
                display_name=display_name,
                contact_email=contact_email,
                plan=plan,
            )
            view = await tenant_view(session, tenant)
        return {"tenant": _dump(view), "apiKey": _created(key)}

    async def create_api_key(self, tenant: str, role: str, display_name: str) -> dict[str, Any]:
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant)
            key = await self.tenants.issue_api_key(
                session, record, role=role, display_name=display_name, created_by="operator"
            )
        return _created(key)


def _created(key: IssuedKey) -> dict[str, Any]:
    return _dump(api_key_view(key.record, raw=key.raw))


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data
