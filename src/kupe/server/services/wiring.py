"""One wiring of the services, for the server's runtime and the operator's commands alike."""

from __future__ import annotations

from dataclasses import dataclass

from kupe.core.clock import Clock
from kupe.core.versions import VersionCatalogue
from kupe.server.db.engine import Database
from kupe.server.services.apikey import ApiKeyService
from kupe.server.services.auth import AuthService
from kupe.server.services.cluster import ClusterFeatures, ClusterService
from kupe.server.services.console_session import ConsoleSessionService
from kupe.server.services.credentials import CredentialService
from kupe.server.services.member import MemberService
from kupe.server.services.oidc import OidcVerifier
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.tenant import TenantService


@dataclass(frozen=True)
class Services:
    """The business rules of one process, sharing one database and clock."""

    plans: PlanCatalogue
    versions: VersionCatalogue
    auth: AuthService
    tenants: TenantService
    clusters: ClusterService
    api_keys: ApiKeyService
    members: MemberService
    credentials: CredentialService
    console_sessions: ConsoleSessionService


def build_services(
    db: Database,
    plans: PlanCatalogue,
    versions: VersionCatalogue,
    clock: Clock,
    *,
    features: ClusterFeatures | None = None,
    oidc: OidcVerifier | None = None,
) -> Services:
    features = features or ClusterFeatures()
    tenants = TenantService(db, plans, clock)
    clusters = ClusterService(db, plans, versions, clock, features)
    console_sessions = ConsoleSessionService(clock)
    return Services(
        plans=plans,
        versions=versions,
        auth=AuthService(clock, oidc=oidc, sessions=console_sessions),
        tenants=tenants,
        clusters=clusters,
        api_keys=ApiKeyService(tenants, clock),
        members=MemberService(tenants, clock),
        credentials=CredentialService(clusters, clock, supported=features.kupe_tokens),
        console_sessions=console_sessions,
    )
