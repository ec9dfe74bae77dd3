"""Operator actions behind `kupe admin ...`: run against the database, server running or not.

Each action is one unit of work and returns plain JSON-ready data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock, SystemClock, rfc3339
from kupe.core.errors import NotFound, NotImplementedYet, ServiceUnavailable, ValidationFailed
from kupe.core.phases import TenantPhase
from kupe.core.versions import VersionCatalogue
from kupe.server.db.engine import Database
from kupe.server.db.models import Tenant
from kupe.server.db.refs import TenantRef
from kupe.server.openbao import OpenBaoClient, OpenBaoError, OpenBaoSettings, mount_name
from kupe.server.services.auth import Principal
from kupe.server.services.billing import invoice_view
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.tenant import IssuedKey
from kupe.server.services.views import api_key_view, member_view
from kupe.server.services.wiring import build_services
from kupe.server.settings import Settings

OPERATOR = "operator"


class Admin:
    def __init__(
        self,
        db: Database,
        plans: PlanCatalogue,
        clock: Clock,
        vault: OpenBaoSettings | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.vault = vault
        # The operator's view of versions: the whole catalogue (no provider runs here).
        services = build_services(db, plans, VersionCatalogue(), clock)
        self.tenants = services.tenants
        self.clusters = services.clusters
        self.members = services.members
        self.api_keys = services.api_keys
        self.lifecycle = services.lifecycle
        self.billing = services.billing

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Admin]:
        plans = PlanCatalogue.load(settings.plans_file)
        db = Database(
            settings.effective_database_url,
            pool_size=2,
            timeout=settings.database.timeout_seconds,
        )
        try:
            await db.upgrade()
            yield cls(db, plans, clock or SystemClock(), settings.openbao.client_settings())
        finally:
            await db.dispose()

    # -- tenants -----------------------------------------------------------------------------

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
            view = await self.tenants.view(session, tenant)
        return {"tenant": _dump(view), "apiKey": _created(key)}

    async def list_tenants(self) -> dict[str, Any]:
        async with self.db.read() as session:
            rows = await self.tenants.list_tenants(session)
            items = [_dump(await self.tenants.view(session, row)) for row in rows]
        return {"items": items}

    async def get_tenant(self, name: str) -> dict[str, Any]:
        async with self.db.read() as session:
            return await self._view(session, await self.tenants.tenant(session, name))

    async def set_plan(self, name: str, plan: str, *, force: bool) -> dict[str, Any]:
        """Move a tenant to another plan; refused (409) when it exceeds the new plan's limits,
        unless forced."""
        async with self.db.write() as session:
            tenant = await self.tenants.tenant(session, name, for_update=True)
            await self.tenants.change_plan(session, tenant, plan, force=force)
            return await self._view(session, tenant)

    async def set_phase(self, name: str, phase: TenantPhase) -> dict[str, Any]:
        """Suspend (reads keep working, writes answer 403; clusters keep running) or resume."""
        async with self.db.write() as session:
            tenant = await self.tenants.tenant(session, name, for_update=True)
            await self.lifecycle.set_phase(session, tenant, phase)
            return await self._view(session, tenant)

    async def delete_tenant(
        self, name: str, *, cascade: bool, wait_seconds: float = 0.0
    ) -> dict[str, Any]:
        """Delete a tenant. With clusters it is refused unless `cascade`: they are deleted like
        DELETE /clusters/{name}, the tenant is Terminating meanwhile, and the row goes once
        the reconciler has removed them (now if `wait_seconds` allows, else on a later run)."""
        async with self.db.write() as session:
            tenant = await self.tenants.tenant(session, name, for_update=True)
            remaining = await self.lifecycle.begin_deletion(session, tenant, cascade=cascade)
            deleted = await self.lifecycle.finish_deletion(session, tenant)
        deadline = time.monotonic() + wait_seconds
        while not deleted and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            deleted, remaining = await self._try_finish(name)
        if deleted:
            return {"name": name, "deleted": True}
        return {
            "name": name,
            "deleted": False,
            "phase": "Terminating",
            "clustersRemaining": remaining,
        }

    async def _try_finish(self, name: str) -> tuple[bool, int]:
        async with self.db.write() as session:
            try:
                tenant = await self.tenants.tenant(session, name, for_update=True)
            except NotFound:
                return True, 0
            if await self.lifecycle.finish_deletion(session, tenant):
                return True, 0
            view = await self.tenants.view(session, tenant)
            return False, view.status.cluster_count or 0

    # -- API keys and members ----------------------------------------------------------------

    async def create_api_key(
        self,
        tenant: str,
        role: str,
        display_name: str,
        expires_at: datetime | None = None,
    ) -> dict[str, Any]:
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant)
            key = await self.tenants.issue_api_key(
                session,
                record.id,
                role=role,
                display_name=display_name,
                created_by=OPERATOR,
                expires_at=expires_at,
            )
        return _created(key)

    async def list_api_keys(self, tenant: str) -> dict[str, Any]:
        async with self.db.read() as session:
            principal = self._operator(await self.tenants.tenant(session, tenant))
            rows, _ = await self.api_keys.list(session, principal)
        return {"items": [_dump(api_key_view(row)) for row in rows]}

    async def revoke_api_key(self, tenant: str, key_id: str) -> dict[str, Any]:
        async with self.db.write() as session:
            principal = self._operator(await self.tenants.tenant(session, tenant))
            await self.api_keys.revoke(session, principal, key_id)
        return {"id": key_id, "revoked": True}

    async def add_member(self, tenant: str, email: str, role: str) -> dict[str, Any]:
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant, for_update=True)
            member = await self.members.add_member(session, record, email, role)
        return _dump(member_view(member))

    # -- managed secrets ---------------------------------------------------------------------

    async def issue_openbao_token(self, tenant: str, ttl: timedelta) -> dict[str, Any]:
        """A token for the tenant to write its values with: read, write and list on its own
        KV v2 mount only (created now if missing). Printed once; Kupe keeps no copy."""
        if self.vault is None:
            raise NotImplementedYet("Managed secrets need OpenBao (KUPE_OPENBAO_ADDR)")
        async with self.db.read() as session:
            record = await self.tenants.tenant(session, tenant)
        try:
            async with OpenBaoClient(self.vault, clock=self.clock) as client:
                issued = await client.issue_tenant_token(record.name, ttl)
        except ValueError as exc:
            raise ValidationFailed(str(exc), field="ttl") from None
        except OpenBaoError as exc:
            raise ServiceUnavailable(f"OpenBao: {exc}") from None
        return {
            "tenant": record.name,
            "address": self.vault.address,
            "mount": mount_name(record.name, self.vault.mount_prefix),
            "token": issued.token,
            "accessor": issued.accessor,
            "policies": list(issued.policies),
            "expiresAt": rfc3339(issued.expires_at),
        }

    # -- billing -----------------------------------------------------------------------------

    async def record_usage(
        self, tenant: str, metrics_series: int, logs_gb: str, month: str | None = None
    ) -> dict[str, Any]:
        """A month's observability usage (until a metrics backend reports it)."""
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant)
            return await self.billing.record_usage(
                session, record, metrics_series=metrics_series, logs_gb=logs_gb, period=month
            )

    async def grant_credit(self, tenant: str, amount: str, reason: str) -> dict[str, Any]:
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant)
            return await self.billing.grant_credit(session, record, amount, reason)

    async def set_invoice_phase(self, tenant: str, name: str, phase: str) -> dict[str, Any]:
        """Paid, PastDue or Canceled, until a payment processor is integrated."""
        async with self.db.write() as session:
            record = await self.tenants.tenant(session, tenant)
            version = await self.db.next_resource_version(session)
            row = await self.billing.set_phase(session, record, name, phase, version)
            return _dump(invoice_view(row))

    async def list_invoices(self, tenant: str) -> dict[str, Any]:
        async with self.db.read() as session:
            principal = self._operator(await self.tenants.tenant(session, tenant))
            rows = await self.billing.list(session, principal)
        return {"items": [_dump(invoice_view(row)) for row in rows]}

    # -- helpers -----------------------------------------------------------------------------

    async def _view(self, session: AsyncSession, tenant: Tenant) -> dict[str, Any]:
        return _dump(await self.tenants.view(session, tenant))

    @staticmethod
    def _operator(tenant: Tenant) -> Principal:
        return Principal(tenant=TenantRef.of(tenant), role="admin", actor=OPERATOR, operator=True)


def _created(key: IssuedKey) -> dict[str, Any]:
    return _dump(api_key_view(key.record, raw=key.raw))


def _dump(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data
