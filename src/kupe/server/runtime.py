"""The composition root of one Kupe process: settings, database, provider, services, kinds and
the reconciler that runs them."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from sqlalchemy.exc import IntegrityError

from kupe.core.clock import Clock, SystemClock
from kupe.core.errors import AlreadyExists
from kupe.core.versions import VersionCatalogue
from kupe.server.alertmanager.backends import BackendError
from kupe.server.alertmanager.setup import alert_backend, alert_checker, server_sealer
from kupe.server.billing.engine import Billing, ensure_drafts, seed_rates
from kupe.server.billing.rates import Month
from kupe.server.db.engine import Database
from kupe.server.db.migrate import head_revision
from kupe.server.db.outbox import Outbox
from kupe.server.metrics import Metrics
from kupe.server.openbao import OpenBaoClient
from kupe.server.providers.base import HighAvailability, Provider, TokenAuthentication
from kupe.server.providers.registry import ProviderContext, build_provider
from kupe.server.reconciler.kind import AnyKind
from kupe.server.reconciler.kinds.alerting import AlertingKind
from kupe.server.reconciler.kinds.cluster import ClusterKind
from kupe.server.reconciler.kinds.invoice import InvoiceKind
from kupe.server.reconciler.kinds.secret import SecretKind
from kupe.server.reconciler.kinds.tenant import TenantKind
from kupe.server.reconciler.kinds.webhook import WebhookKind
from kupe.server.reconciler.loop import Reconciler
from kupe.server.reconciler.policy import RetryPolicy
from kupe.server.services.cluster_rules import ClusterFeatures
from kupe.server.services.event_retention import EventRetention
from kupe.server.services.event_sources import outbox_with_sources
from kupe.server.services.events import build_event_services
from kupe.server.services.oidc import OidcVerifier
from kupe.server.services.plan import PlanCatalogue, PlanCatalogueError, plan_terms
from kupe.server.services.ratelimit import RateLimiter
from kupe.server.services.retention import Retention
from kupe.server.services.webhook import WebhookOptions
from kupe.server.services.wiring import Services, build_services
from kupe.server.settings import Settings
from kupe.server.webhooks.sealing import SecretSealer

BOOTSTRAP_TENANT = "default"
BOOTSTRAP_EMAIL = "admin@kupe.internal"
# When the rates used before any version was recorded start (never in practice).
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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
            settings.effective_database_url, timeout=settings.database.timeout_seconds
        )
        self.db.outbox = outbox_with_sources(Outbox(self.clock))
        self.plans = PlanCatalogue.load(settings.plans_file)
        if settings.bootstrap_plan not in self.plans:
            raise PlanCatalogueError(
                f"KUPE_BOOTSTRAP_PLAN {settings.bootstrap_plan!r} is not in the plan catalogue"
            )
        self.provider = provider or build_provider(
            settings.provider,
            settings.provider_section,
            ProviderContext(
                clock=self.clock,
                metrics=self.metrics,
                data_dir=settings.data_dir,
                cluster_domain=settings.cluster_domain,
                api_url=settings.api_url,
            ),
        )
        bao = settings.openbao.client_settings()
        self.vault = OpenBaoClient(bao) if bao is not None else None
        oidc = settings.oidc
        self.sealer = server_sealer(settings.alerting, settings.data_dir)
        checker = alert_checker(settings.alerting)
        self.alert_backend = alert_backend(settings.alerting, settings.data_dir, checker)
        hooks = settings.webhooks
        configured = hooks.sealing_secret()
        sealer = SecretSealer.from_key(configured) if configured else SecretSealer(self.sealer)
        self.services: Services = build_services(
            self.db,
            self.plans,
            VersionCatalogue(offered=self.provider.offered_versions),
            self.clock,
            features=ClusterFeatures(
                high_availability=isinstance(self.provider, HighAvailability)
                and self.provider.supports_high_availability(),
                kupe_tokens=isinstance(self.provider, TokenAuthentication)
                and self.provider.accepts_kupe_tokens(),
            ),
            oidc=OidcVerifier(oidc.issuer, oidc.audience or "", oidc.jwks_url, self.clock)
            if oidc.issuer
            else None,
            secrets_enabled=self.vault is not None,
            sealer=self.sealer,
            alert_checker=checker,
            webhook_allow_private=settings.webhooks.allow_private,
            estimate_refresh_seconds=settings.billing.estimate_refresh_seconds,
            audit_retention_days=settings.audit.retention_days,
            audit_prune_batch=settings.audit.prune_batch,
            webhooks=WebhookOptions(
                sealer,
                allow_private=hooks.allow_private,
                max_per_tenant=hooks.max_per_tenant,
            ),
        )
        limits = settings.rate_limits
        self.rate_limiter = RateLimiter(
            rps=limits.rps,
            burst=limits.burst,
            auth_failure_allowance=limits.auth_failure_allowance,
            auth_failure_window=limits.auth_failure_window_seconds,
            auth_backoff_max=limits.auth_backoff_max_seconds,
            clock=self.clock,
        )
        policy = RetryPolicy(settings.reconciler)
        self.billing = Billing(plan_terms(self.plans), settings.billing.rates(EPOCH), self.clock)
        self.webhook_kind = WebhookKind(self.db, sealer, self.clock, hooks)
        self.kinds: list[AnyKind] = [
            ClusterKind(self.provider, self.clock, policy, self.metrics),
            TenantKind(self.db, self.clock, policy),
            SecretKind(
                self.db,
                self.vault,
                self.provider,
                self.clock,
                policy,
                settings.openbao.resync_seconds,
            ),
            AlertingKind(
                self.db,
                self.sealer,
                self.alert_backend,
                self.clock,
                policy,
                settings.alerting.resync_seconds,
            ),
            InvoiceKind(self.db, self.billing, self.clock, policy, settings.billing),
            self.webhook_kind,
        ]
        self.reconciler = Reconciler(
            self.db, self.kinds, self.clock, self.metrics, settings.reconciler
        )
        self.run_reconciler = (
            settings.reconciler.mode == "on" if run_reconciler is None else run_reconciler
        )
        self.head = head_revision()
        self.event_retention = EventRetention(self.db, self.clock, settings.events)
        self.events = build_event_services(self.db, settings.events, self.services.clusters.views)
        self.retention = Retention(
            self.db,
            self.clock,
            self.services.audit,
            delivery_days=hooks.delivery_retention_days,
            batch=settings.audit.prune_batch,
            interval_seconds=settings.events.prune_interval_seconds,
        )

    async def start(self, *, bootstrap: bool = False) -> BootstrapResult | None:
        await self.db.upgrade()
        result = await self.bootstrap() if bootstrap else None
        await self.start_billing()
        await self.events.hub.start()
        if self.run_reconciler:
            try:
                await self.alert_backend.start()
            except BackendError as exc:
                # Alerting must not keep the API down: the pushes retry, and say why.
                structlog.get_logger("kupe").warning("alerting.start_failed", error=str(exc))
            self.reconciler.start()
            self.event_retention.start()
            self.retention.start()
        return result

    async def start_billing(self) -> None:
        """Record the configured rates (a new version from now if they changed) and make sure
        every tenant has this month's draft invoice."""
        now = self.clock.now()
        # A replica starting at the same moment may do either first: then it is done.
        with contextlib.suppress(IntegrityError):
            async with self.db.write() as session:
                await seed_rates(session, self.settings.billing.rates(now))
        self.billing.forget_versions()
        with contextlib.suppress(IntegrityError):
            await ensure_drafts(self.db, Month.of(now), now)

    async def stop(self) -> None:
        await self.events.hub.close()
        await self.event_retention.stop()
        await self.retention.stop()
        await self.reconciler.stop()
        await self.webhook_kind.aclose()
        await self.db.dispose()
        await self.provider.aclose()
        await self.alert_backend.aclose()
        if self.vault is not None:
            await self.vault.aclose()

    def wake(self) -> None:
        """Hint the reconcilers after a commit that recorded new desired state: this process's
        directly, other replicas' through the database (PostgreSQL NOTIFY)."""
        self.reconciler.wake()
        self.db.wakeups.announce()

    async def bootstrap(self) -> BootstrapResult | None:
        """On a database with no tenants, create `default` with an admin key written to
        <data dir>/bootstrap-api-key (0600). Replicas racing here create it once."""
        tenants = self.services.tenants
        try:
            async with self.db.write() as session:
                if await tenants.has_tenants(session):
                    return None
                _tenant, key = await tenants.create_tenant(
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
