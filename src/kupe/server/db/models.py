"""ORM models: the stored state of tenants, members, API keys, clusters, idempotent requests,
managed secrets, console sessions, the audit log and webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kupe.core.conditions import Condition
from kupe.server.db.leases import LeaseMixin
from kupe.server.db.types import JSONType, UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ResourceVersionCounter(Base):
    """The installation-wide resourceVersion counter on SQLite (PostgreSQL uses a sequence)."""

    __tablename__ = "resource_version_counter"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Tenant(Base):
    """A tenant; its reconciler bookkeeping (LeaseMixin's columns, nullable here: only a tenant
    being deleted has work due) finishes its deletion."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    contact_email: Mapped[str] = mapped_column(String(320), nullable=False)
    plan: Mapped[str] = mapped_column(String(63), nullable=False)
    enforce_metrics_limit: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    enforce_log_limit: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    phase: Mapped[str] = mapped_column(String(20), nullable=False, default="Active")
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # Set when deletion completed: the row stays, with its clusters' rows, for metering and
    # the final invoice; the name is free again and the tenant is gone from the API.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_reconcile_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_count: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0"), default=0
    )

    __table_args__ = (
        Index(
            "ix_tenants_due",
            "next_reconcile_at",
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index(
            "uq_tenants_live_name",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )


class Member(Base):
    __tablename__ = "members"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    # SHA-256 of the whole raw key; the raw key is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str] = mapped_column(String(340), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resource_version: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("0"), index=True
    )


class Cluster(LeaseMixin, Base):
    """A tenant's cluster: desired spec, observed status and the reconciler's bookkeeping."""

    __tablename__ = "clusters"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Never cascaded: a removed tenant's clusters stay for metering history.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    version: Mapped[str] = mapped_column(String(20), nullable=False)
    # Quantities exactly as the client set them (None: never set, the plan's default applies).
    cpu: Mapped[str | None] = mapped_column(String(40))
    memory: Mapped[str | None] = mapped_column(String(40))
    storage: Mapped[str | None] = mapped_column(String(40))
    # The effective allocation, as quantities (what was set, else the default at the time) and
    # exactly, for quotas, metering and providers.
    allocated_cpu: Mapped[str] = mapped_column(String(40), nullable=False)
    allocated_memory: Mapped[str] = mapped_column(String(40), nullable=False)
    allocated_storage: Mapped[str] = mapped_column(String(40), nullable=False)
    cpu_millis: Mapped[int] = mapped_column(BigInteger, nullable=False)
    memory_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    storage_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    alerts: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    high_availability: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false"), default=False
    )
    ha_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when teardown completed; the row stays for metering history but is gone from the API.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    phase: Mapped[str] = mapped_column(String(20), nullable=False)
    observed_generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    kubernetes_version: Mapped[str | None] = mapped_column(String(40))
    endpoint: Mapped[str | None] = mapped_column(String(300))
    ca_certificate: Mapped[str | None] = mapped_column(Text)
    conditions: Mapped[list[Condition]] = mapped_column(JSONType, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    # Control-plane replicas as the provider reports them.
    ha_replicas_ready: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("0"), default=0
    )
    ha_replicas_desired: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default=text("1"), default=1
    )

    __table_args__ = (
        Index(
            "uq_clusters_live_name",
            "tenant_id",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index(
            "ix_clusters_due",
            "next_reconcile_at",
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        # The tenant's resourceVersion includes its clusters' newest one (an index-only max).
        Index("ix_clusters_tenant_version", "tenant_id", "resource_version"),
    )


class IdempotencyRecord(Base):
    """The first response to a POST carrying an Idempotency-Key, replayed for repeats."""

    __tablename__ = "idempotency_records"
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)
    etag: Mapped[str | None] = mapped_column(String(40))
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class ClusterToken(Base):
    """A short-lived credential for one cluster, issued to a key or member; only its hash is
    kept. The cluster's API server checks it with Kupe (TokenReview)."""

    __tablename__ = "cluster_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    cluster_id: Mapped[str] = mapped_column(
        ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False, index=True
    )
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    member_email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class ManagedSecret(LeaseMixin, Base):
    """A managed secret's definition (which OpenBao value goes into which clusters) and what
    the reconciler did with it. The value itself is never stored here."""

    __tablename__ = "managed_secrets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    secret_path: Mapped[str] = mapped_column(String(512), nullable=False)
    # [{cluster, namespace, secretName?}]; None when never set ([] when cleared).
    sync: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    observed_generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phase: Mapped[str] = mapped_column(String(20), nullable=False)
    conditions: Mapped[list[Condition]] = mapped_column(JSONType, nullable=False)
    # Per target: {cluster, namespace, secretName, phase, message, lastSyncedAt?, sourceVersion?}
    sync_statuses: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    # Copies Kupe wrote and has not removed: {clusterId, cluster, namespace, secretName,
    # sourceVersion}; a target dropped from `sync` is cleaned up from here.
    applied: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)

    __table_args__ = (
        Index(
            "uq_managed_secrets_live_name",
            "tenant_id",
            "name",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index(
            "ix_managed_secrets_due",
            "next_reconcile_at",
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )


class ConsoleSession(Base):
    """A web console sign-in: the browser holds the session id, the database only its hash."""

    __tablename__ = "console_sessions"
    # SHA-256 of the raw session id (256 random bits: no salt or stretching needed).
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Exactly one of these: the API key the session was made from, or the OIDC member's email.
    api_key_id: Mapped[str | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    member_email: Mapped[str | None] = mapped_column(String(320))
    csrf_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertmanagerConfig(LeaseMixin, Base):
    """A tenant's Alertmanager routes and global section (sealed: it holds credentials), the
    versions of each document, and what the reconciler pushed to the alert backend. Every
    write of the tenant's alerting documents bumps `resource_version` (the effective
    configuration's ETag) and `generation` (what the backend must catch up with)."""

    __tablename__ = "alertmanager_configs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, unique=True)
    # The ordered child routes of the tenant's root route; None when never set.
    routes: Mapped[list[Any] | None] = mapped_column(JSONType)
    routes_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    global_sealed: Mapped[str | None] = mapped_column(Text)
    global_version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    observed_generation: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    push_error: Mapped[str | None] = mapped_column(Text)
    # Set once the tenant is removed and its configuration is gone from the backend.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(
            "ix_alertmanager_configs_due",
            "next_reconcile_at",
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
    )


# -- billing (issue 16): a ledger written in the same transaction as each change ---------------


class UsageInterval(Base):
    """A span of time during which a cluster held one allocation: opened at creation, closed
    and reopened when a resize is applied, closed when its deletion completes."""

    __tablename__ = "usage_intervals"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id"), nullable=False)
    cpu_millis: Mapped[int] = mapped_column(BigInteger, nullable=False)
    memory_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    storage_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_usage_intervals_tenant", "tenant_id", "started_at"),
        # At most one open interval per cluster.
        Index(
            "uq_usage_intervals_open",
            "cluster_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )


class AlertmanagerReceiver(Base):
    """One receiver of a tenant, in Alertmanager's schema, sealed whole (it holds credentials)."""

    __tablename__ = "alertmanager_receivers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    sealed: Mapped[str] = mapped_column(Text, nullable=False)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (Index("uq_alertmanager_receivers_name", "tenant_id", "name", unique=True),)


class PlanPeriod(Base):
    """A span of time a tenant spent on one plan, with the platform fee it had then."""

    __tablename__ = "plan_periods"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    plan: Mapped[str] = mapped_column(String(63), nullable=False)
    # Monthly fee as a decimal string; None (history from before billing) means the
    # catalogue's fee.
    platform_fee: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_plan_periods_tenant", "tenant_id", "started_at"),
        Index(
            "uq_plan_periods_open",
            "tenant_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )


class BillingRates(Base):
    """One version of the operator's rates, in force from `effective_from` until the next."""

    __tablename__ = "billing_rates"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, unique=True)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # Decimal strings.
    cpu_core_hour: Mapped[str] = mapped_column(String(30), nullable=False)
    memory_gib_hour: Mapped[str] = mapped_column(String(30), nullable=False)
    storage_gib_hour: Mapped[str] = mapped_column(String(30), nullable=False)
    metrics_series_month: Mapped[str] = mapped_column(String(30), nullable=False)
    logs_gb: Mapped[str] = mapped_column(String(30), nullable=False)


class ObservabilityUsage(Base):
    """A tenant's observability usage in one month, as its source reported it."""

    __tablename__ = "observability_usage"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    metrics_series: Mapped[int] = mapped_column(BigInteger, nullable=False)
    logs_gb: Mapped[str] = mapped_column(String(30), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Credit(Base):
    """Money granted to a tenant by the operator, applied to its invoices as they are billed."""

    __tablename__ = "credits"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False, index=True)
    amount: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Invoice(LeaseMixin, Base):
    """A tenant's invoice for one calendar month (UTC). While Draft the reconciler keeps its
    estimate fresh and bills it once the month has ended; a billed invoice's lines, subtotal,
    credits and total never change again (only its phase, by the operator)."""

    __tablename__ = "invoices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(7), nullable=False)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    phase: Mapped[str] = mapped_column(String(20), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # The statement: as billed once Billed; the latest estimate while Draft.
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    subtotal: Mapped[str] = mapped_column(String(20), nullable=False)
    credits_applied: Mapped[str] = mapped_column(String(20), nullable=False)
    total: Mapped[str] = mapped_column(String(20), nullable=False)
    # The running estimate's breakdown (tenant.status.currentUsage) and when it was computed.
    estimate: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    estimated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    billed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)

    __table_args__ = (
        Index("uq_invoices_tenant_name", "tenant_id", "name", unique=True),
        Index("ix_invoices_tenant_version", "tenant_id", "resource_version"),
        Index(
            "ix_invoices_due",
            "next_reconcile_at",
            sqlite_where=text("phase = 'Draft'"),
            postgresql_where=text("phase = 'Draft'"),
        ),
    )


class Event(Base):
    """The outbox: one row per change of a tenant-visible object, written in the change's own
    transaction and keyed by the resourceVersion the change produced (a member shares its
    tenant's). `object` is the object's public JSON as the API shows it, never a credential."""

    __tablename__ = "events"
    resource_version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    object_id: Mapped[str] = mapped_column(String(340), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str] = mapped_column(String(340), nullable=False)
    type: Mapped[str] = mapped_column(String(10), nullable=False)
    object: Mapped[str] = mapped_column(Text, nullable=False)
    actor: Mapped[str] = mapped_column(String(340), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(40))
    message: Mapped[str | None] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)

    __table_args__ = (
        # An object's history (its previous event, a cluster's timeline).
        Index("ix_events_object", "kind", "object_id", "resource_version"),
    )


class EventHorizon(Base):
    """How far the outbox was pruned (its one row, id `outbox`): a watch from an older
    resourceVersion is EXPIRED."""

    __tablename__ = "event_horizon"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pruned_through: Mapped[int] = mapped_column(BigInteger, nullable=False)


# A webhook reads its tenant's events after its cursor: without this, every look at an idle
# hook would scan every other tenant's newer events.
Index("ix_events_tenant_version", Event.tenant_id, Event.resource_version)

# An integer key that SQLite makes its rowid (monotonic) and PostgreSQL a bigint identity.
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    """One mutating request of an authenticated tenant caller, accepted or refused: who, from
    where, what and how it went. Never a request body or a credential."""

    __tablename__ = "audit_entries"
    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    # Never cascaded: like a removed tenant's clusters, its audit stays until retention ends.
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    actor: Mapped[str] = mapped_column(String(340), nullable=False)
    client_ip: Mapped[str] = mapped_column(String(64), nullable=False)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str] = mapped_column(String(10), nullable=False)
    route: Mapped[str] = mapped_column(String(300), nullable=False)
    target: Mapped[str | None] = mapped_column(String(400))
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)

    __table_args__ = (Index("ix_audit_entries_tenant", "tenant_id", "id"),)


class Webhook(LeaseMixin, Base):
    """A tenant's webhook: where its events go, the sealed signing secret, and how far delivery
    got (`cursor`: the resourceVersion of the last event handled)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    events: Mapped[list[str]] = mapped_column(JSONType, nullable=False)
    # AES-GCM under the installation's sealing key (see kupe.server.webhooks.sealing).
    sealed_secret: Mapped[str] = mapped_column(Text, nullable=False)
    created_by: Mapped[str] = mapped_column(String(340), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resource_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The last event handled, as the outbox orders them: (resourceVersion, kind, object id).
    cursor: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cursor_kind: Mapped[str] = mapped_column(String(20), nullable=False, default="")
    cursor_object: Mapped[str] = mapped_column(String(340), nullable=False, default="")
    # When delivery of the event at the head of the queue first failed (None: not failing).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_webhooks_due", "next_reconcile_at"),)


class WebhookDelivery(Base):
    """One attempt to deliver one event to one webhook."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    delivered: Mapped[bool] = mapped_column(Boolean, nullable=False)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        Index("ix_webhook_deliveries_event", "webhook_id", "event_id"),
    )
