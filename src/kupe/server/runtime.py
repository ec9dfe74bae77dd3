"""Everything one Kupe process holds: settings, database, provider, services and reconciler."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock, SystemClock
from kupe.server.db.engine import Database, head_revision
from kupe.server.metrics import Metrics
from kupe.server.providers.base import Provider
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings
from kupe.server.reconciler.cluster import ClusterController
from kupe.server.reconciler.loop import Reconciler
from kupe.server.services.auth import AuthService, Principal
from kupe.server.services.cluster import ClusterService
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.tenant import TenantService
from kupe.server.settings import Settings

log = structlog.get_logger("kupe")
BOOTSTRAP_TENANT = "default"
BOOTSTRAP_EMAIL = "admin@kupe.internal"


def build_provider(settings: Settings, clock: Clock, metrics: Metrics) -> Provider:
    """The provider named by KUPE_PROVIDER."""
    seed = settings.sim_seed
    return SimulatedProvider(
        settings.effective_sim_state_file,
        clock=clock,
        metrics=metrics,
        cluster_domain=settings.cluster_domain,
        timings=SimulatedTimings(
            provision_seconds=settings.sim_provision_seconds,
            upgrade_seconds=settings.sim_upgrade_seconds,
            delete_seconds=settings.sim_delete_seconds,
            failure_rate=settings.sim_failure_rate,
            fail_pattern=settings.sim_fail_pattern,
        ),
        rng=random.Random(seed) if seed is not None else None,  # noqa: S311 - fault injection
    )


@dataclass(frozen=True)
class BootstrapResult:
    tenant: str
    api_key: str
    key_file: Path


class Runtime:
    """Wires one process together; the API and the reconciler share it."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        provider: Provider | None = None,
        run_reconciler: bool | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self.db = Database(settings.effective_database_url)
        self.plans = PlanCatalogue.load(settings.plans_file)
        self.provider = provider or build_provider(settings, self.clock, self.metrics)
        self.auth = AuthService(self.clock)
        self.clusters = ClusterService(self.db, self.plans, self.clock)
        self.tenants = TenantService(self.db, self.plans, self.clock)
        self.controller = ClusterController(self.provider, self.clock, settings)
        self.reconciler = Reconciler(self.db, self.controller, self.clock, self.metrics, settings)
        self.run_reconciler = (
            settings.reconciler == "on" if run_reconciler is None else run_reconciler
        )
        self.head = head_revision()

    async def start(self, *, bootstrap: bool = False) -> BootstrapResult | None:
        await self.db.upgrade()
        result = await self.bootstrap() if bootstrap else None
        if self.run_reconciler:
            self.reconciler.start()
        return result

    async def stop(self) -> None:
        await self.reconciler.stop()
        await self.db.dispose()

    def wake(self) -> None:
        """Hint the reconciler after a commit that recorded new desired state."""
        self.reconciler.wake()

    @asynccontextmanager
    async def reading(
        self, authorization: str | None, tenant: str
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """A read session and the authenticated caller."""
        async with self.db.read() as session:
            principal = await self.auth.authenticate(session, authorization, tenant)
            yield session, principal

    @asynccontextmanager
    async def writing(
        self, authorization: str | None, tenant: str
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """A unit of work and the authenticated caller; the reconciler is woken after commit."""
        async with self.db.write() as session:
            principal = await self.auth.authenticate(session, authorization, tenant)
            yield session, principal
        self.wake()

    async def bootstrap(self) -> BootstrapResult | None:
        """On a database with no tenants, create `default` with an admin key written to
        <data dir>/bootstrap-api-key (0600). Replicas racing here create it once."""
        try:
            async with self.db.write() as session:
                if await self.tenants.has_tenants(session):
                    return None
                _tenant, key = await self.tenants.create_tenant(
                    session,
                    name=BOOTSTRAP_TENANT,
                    display_name="Default tenant",
                    contact_email=BOOTSTRAP_EMAIL,
                    plan=self.settings.bootstrap_plan,
                )
        except IntegrityError:
            return None
        key_file = self.settings.data_dir / "bootstrap-api-key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.raw + "\n")
        os.chmod(key_file, 0o600)
        return BootstrapResult(BOOTSTRAP_TENANT, key.raw, key_file)


def announce_bootstrap(result: BootstrapResult) -> None:
    """Print the bootstrap key once, for the person who just started Kupe."""
    print(
        f"Bootstrapped tenant '{result.tenant}'. Admin API key (shown once, also in "
        f"{result.key_file}):\n\n  export KUPE_TENANT={result.tenant}\n"
        f"  export KUPE_API_KEY={result.api_key}\n",
        file=sys.stdout,
        flush=True,
    )
