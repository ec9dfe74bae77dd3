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
from kupe.core.errors import AlreadyExists
from kupe.server.db.engine import Database, head_revision
from kupe.server.db.repository import ClusterVersion
from kupe.server.metrics import Metrics
from kupe.server.providers.base import Provider
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings
from kupe.server.reconciler.cluster import ClusterController
from kupe.server.reconciler.loop import Reconciler
from kupe.server.services.apikey import ApiKeyService
from kupe.server.services.auth import AuthService, Principal
from kupe.server.services.cluster import ClusterService
from kupe.server.services.member import MemberService
from kupe.server.services.oidc import OidcVerifier
from kupe.server.services.plan import PlanCatalogue, PlanCatalogueError
from kupe.server.services.ratelimit import RateLimiter
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
        self.db = Database(
            settings.effective_database_url, timeout=settings.database_timeout_seconds
        )
        self.plans = PlanCatalogue.load(settings.plans_file)
        self.provider = provider or build_provider(settings, self.clock, self.metrics)
        if settings.bootstrap_plan not in self.plans:
            raise PlanCatalogueError(
                f"KUPE_BOOTSTRAP_PLAN {settings.bootstrap_plan!r} is not in the plan catalogue"
            )
        oidc = (
            OidcVerifier(
                settings.oidc_issuer,
                settings.oidc_audience or "",
                settings.oidc_jwks_url,
                self.clock,
            )
            if settings.oidc_issuer
            else None
        )
        self.auth = AuthService(self.clock, oidc=oidc)
        self.clusters = ClusterService(self.db, self.plans, self.clock)
        self.tenants = TenantService(self.db, self.plans, self.clock)
        self.api_keys = ApiKeyService(self.tenants, self.clock)
        self.members = MemberService(self.tenants, self.clock)
        self.rate_limiter = RateLimiter(
            rps=settings.rate_limit_rps,
            burst=settings.rate_limit_burst,
            auth_failure_allowance=settings.auth_failure_allowance,
            auth_failure_window=settings.auth_failure_window_seconds,
            auth_backoff_max=settings.auth_backoff_max_seconds,
            clock=self.clock,
        )
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
        close = getattr(self.provider, "close", None)
        if close is not None:
            close()

    def wake(self) -> None:
        """Hint the reconcilers after a commit that recorded new desired state: this process's
        directly, other replicas' through the database (PostgreSQL NOTIFY)."""
        self.reconciler.wake()
        self.db.announce_work()

    @asynccontextmanager
    async def reading(
        self, authorization: str | None, tenant: str
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """A read session and the authenticated caller."""
        principal: Principal | None = None
        try:
            async with self.db.read() as session:
                principal = await self.auth.authenticate(session, authorization, tenant)
                yield session, principal
        finally:
            if principal is not None:
                await self._record_use(principal)

    @asynccontextmanager
    async def polling(
        self, authorization: str | None, tenant: str, cluster: str = ""
    ) -> AsyncIterator[tuple[Principal, ClusterVersion | None]]:
        """The authenticated caller of a poll (a GET of `cluster`, or a list of the tenant's
        clusters) and, for a GET, the cluster's version (None when there is no such cluster),
        found in one round trip on the hot-read path where there is one."""
        principal: Principal | None = None
        try:
            hot = self.db.hot
            found = (
                await self.auth.authenticate_hot(hot, authorization, tenant, cluster)
                if hot is not None
                else None
            )
            if found is None:
                async with self.db.read() as session:
                    # An empty cluster name matches no cluster: a list's version is None.
                    found = await self.auth.authenticate_for_cluster(
                        session, authorization, tenant, cluster
                    )
            principal = found[0]
            yield found
        finally:
            if principal is not None:
                await self._record_use(principal)

    @asynccontextmanager
    async def writing(
        self, authorization: str | None, tenant: str
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """A unit of work and the authenticated caller; the reconciler is woken after commit.

        The tenant row is locked for the unit of work, so its plan, phase and members cannot
        change under a quota or last-admin decision."""
        principal: Principal | None = None
        try:
            async with self.db.write() as session:
                principal = await self.auth.authenticate(
                    session, authorization, tenant, for_update=True
                )
                yield session, principal
        finally:
            if principal is not None:
                await self._record_use(principal)
        self.wake()

    async def _record_use(self, principal: Principal) -> None:
        """Keep an API key's lastUsedAt, in its own short transaction after the request's, and
        at most once a minute per key."""
        key_id = self.auth.claim_touch(principal)
        if key_id is None:
            return
        try:
            async with self.db.write() as session:
                await self.auth.record_use(session, key_id)
        except Exception as exc:  # bookkeeping must never fail the request
            log.warning("apikey.last_used_failed", key_id=key_id, error=type(exc).__name__)

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
        except (IntegrityError, AlreadyExists):
            # Another replica starting at the same moment bootstrapped it first.
            return None
        key_file = self.settings.data_dir / "bootstrap-api-key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.raw + "\n")
        os.chmod(key_file, 0o600)
        return BootstrapResult(BOOTSTRAP_TENANT, key.raw, key_file)


def announce_bootstrap(result: BootstrapResult) -> None:
    """Say where the bootstrap key is; the key itself goes only to a terminal, never into a
    service's log or journal."""
    lines = [
        f"Bootstrapped tenant '{result.tenant}'; its admin API key is in {result.key_file} "
        "(mode 0600)."
    ]
    if sys.stdout.isatty():
        lines += [
            "",
            f"  export KUPE_TENANT={result.tenant}",
            f"  export KUPE_API_KEY={result.api_key}",
        ]
    print("\n".join(lines) + "\n", file=sys.stdout, flush=True)
