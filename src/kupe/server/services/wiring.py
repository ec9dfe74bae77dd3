"""One wiring of the services, for the server's runtime and the operator's commands alike."""

from __future__ import annotations

import os
from dataclasses import dataclass
from secrets import token_urlsafe

from kupe.core.clock import Clock
from kupe.core.versions import VersionCatalogue
from kupe.server.alertmanager.checker import ConfigChecker
from kupe.server.db.engine import Database
from kupe.server.sealing import Sealer
from kupe.server.services.alerting import AlertingService
from kupe.server.services.apikey import ApiKeyService
from kupe.server.services.audit import AuditService
from kupe.server.services.auth import AuthService
from kupe.server.services.billing import BillingService
from kupe.server.services.cluster import ClusterService
from kupe.server.services.cluster_rules import ClusterFeatures
from kupe.server.services.console_session import ConsoleSessionService
from kupe.server.services.credentials import CredentialService
from kupe.server.services.member import MemberService
from kupe.server.services.oidc import OidcVerifier
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.secret import SecretService
from kupe.server.services.tenant import TenantService
from kupe.server.services.tenant_lifecycle import TenantLifecycle
from kupe.server.services.webhook import WebhookOptions, WebhookService
from kupe.server.webhooks.sealing import SecretSealer


@dataclass(frozen=True)
class Services:
    """The business rules of one process, sharing one database and clock."""

    plans: PlanCatalogue
    versions: VersionCatalogue
    auth: AuthService
    tenants: TenantService
    lifecycle: TenantLifecycle
    clusters: ClusterService
    api_keys: ApiKeyService
    members: MemberService
    credentials: CredentialService
    secrets: SecretService
    console_sessions: ConsoleSessionService
    alerting: AlertingService
    billing: BillingService
    audit: AuditService
    webhooks: WebhookService


def build_services(
    db: Database,
    plans: PlanCatalogue,
    versions: VersionCatalogue,
    clock: Clock,
    *,
    features: ClusterFeatures | None = None,
    oidc: OidcVerifier | None = None,
    secrets_enabled: bool = False,
    sealer: Sealer | None = None,
    alert_checker: ConfigChecker | None = None,
    webhook_allow_private: bool = False,
    estimate_refresh_seconds: float = 3600.0,
    audit_retention_days: float = 30.0,
    audit_prune_batch: int = 1000,
    webhooks: WebhookOptions | None = None,
) -> Services:
    features = features or ClusterFeatures()
    tenants = TenantService(db, plans, clock, estimate_refresh_seconds=estimate_refresh_seconds)
    clusters = ClusterService(db, plans, versions, clock, features)
    secrets = SecretService(db, clock, enabled=secrets_enabled)
    console_sessions = ConsoleSessionService(clock)
    return Services(
        plans=plans,
        versions=versions,
        auth=AuthService(clock, oidc=oidc, sessions=console_sessions),
        tenants=tenants,
        lifecycle=TenantLifecycle(tenants, clusters, secrets, clock),
        clusters=clusters,
        api_keys=ApiKeyService(tenants, clock),
        members=MemberService(tenants, clock),
        credentials=CredentialService(clusters, clock, supported=features.kupe_tokens),
        secrets=secrets,
        console_sessions=console_sessions,
        # Operator commands never touch alerting: a key of their own, never stored.
        alerting=AlertingService(
            db,
            plans,
            clock,
            sealer or Sealer(os.urandom(32)),
            alert_checker,
            allow_private=webhook_allow_private,
        ),
        billing=BillingService(clock, estimate_refresh_seconds),
        audit=AuditService(db, clock, retention_days=audit_retention_days, batch=audit_prune_batch),
        # Without options (operator tools), a throwaway key: such callers seal nothing.
        webhooks=WebhookService(
            db, clock, webhooks or WebhookOptions(SecretSealer.from_key(token_urlsafe(32)))
        ),
    )
