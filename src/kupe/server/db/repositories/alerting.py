"""A tenant's Alertmanager documents: the config row (routes, global, versions) and receivers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kupe.server.alertmanager.documents import StoredAlerting
from kupe.server.db.models import AlertmanagerConfig, AlertmanagerReceiver
from kupe.server.db.repositories.base import TenantScoped, rowcount


class AlertingRepository(TenantScoped):
    async def config(self) -> AlertmanagerConfig | None:
        stmt = (
            select(AlertmanagerConfig)
            .where(AlertmanagerConfig.tenant_id == self.tenant_id)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def lock_config(self) -> None:
        """Hold the tenant's config row until the transaction ends (PostgreSQL; SQLite's
        write transaction already excludes every other writer)."""
        await self.session.execute(
            select(AlertmanagerConfig.id)
            .where(AlertmanagerConfig.tenant_id == self.tenant_id)
            .with_for_update()
        )

    async def stored(self) -> StoredAlerting:
        """Everything stored for the tenant, in one snapshot of plain values."""
        config = await self.config()
        receivers = tuple((r.name, r.sealed, r.resource_version) for r in await self.receivers())
        if config is None:
            return StoredAlerting(self.tenant_id, receivers=receivers)
        return StoredAlerting(
            tenant_id=self.tenant_id,
            version=config.resource_version,
            generation=config.generation,
            routes=config.routes,
            routes_version=config.routes_version,
            global_sealed=config.global_sealed,
            global_version=config.global_version,
            receivers=receivers,
        )

    async def ensure_config(self, config_id: str, resource_version: int, now: datetime) -> None:
        """Insert the tenant's config row unless it exists (a concurrent insert wins quietly)."""
        values = {
            "id": config_id,
            "tenant_id": self.tenant_id,
            "routes": None,
            "routes_version": 0,
            "global_sealed": None,
            "global_version": 0,
            "generation": 0,
            "observed_generation": 0,
            "resource_version": resource_version,
            "created_at": now,
            "next_reconcile_at": now,
            "failure_count": 0,
        }
        insert = (
            pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        await self.session.execute(
            insert(AlertmanagerConfig).values(**values).on_conflict_do_nothing()
        )

    async def compare_and_set(self, expected_version: int, values: Mapping[str, Any]) -> bool:
        """Write `values` to the config row only if it still has `expected_version`."""
        result = await self.session.execute(
            update(AlertmanagerConfig)
            .where(
                AlertmanagerConfig.tenant_id == self.tenant_id,
                AlertmanagerConfig.resource_version == expected_version,
                AlertmanagerConfig.removed_at.is_(None),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) > 0

    async def receivers(self) -> list[AlertmanagerReceiver]:
        stmt = (
            select(AlertmanagerReceiver)
            .where(AlertmanagerReceiver.tenant_id == self.tenant_id)
            .order_by(AlertmanagerReceiver.name)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.scalars(stmt)).all())

    async def receiver_count(self) -> int:
        stmt = select(func.count()).where(AlertmanagerReceiver.tenant_id == self.tenant_id)
        return int(await self.session.scalar(stmt) or 0)

    def add_receiver(self, receiver: AlertmanagerReceiver) -> None:
        self.session.add(receiver)

    async def replace_receiver(self, name: str, sealed: str, resource_version: int) -> None:
        await self.session.execute(
            update(AlertmanagerReceiver)
            .where(
                AlertmanagerReceiver.tenant_id == self.tenant_id,
                AlertmanagerReceiver.name == name,
            )
            .values(sealed=sealed, resource_version=resource_version)
            .execution_options(synchronize_session=False)
        )

    async def delete_receiver(self, name: str) -> None:
        await self.session.execute(
            delete(AlertmanagerReceiver)
            .where(
                AlertmanagerReceiver.tenant_id == self.tenant_id,
                AlertmanagerReceiver.name == name,
            )
            .execution_options(synchronize_session=False)
        )
