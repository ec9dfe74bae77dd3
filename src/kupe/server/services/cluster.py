"""Cluster business rules: validation beyond the schema, plan limits, optimistic locking,
idempotent creates. Only records desired state; the reconciler does the rest."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.conditions import Condition, set_condition
from kupe.core.errors import (
    AlreadyExists,
    ClusterTerminating,
    Conflict,
    DedicatedUnsupported,
    NotFound,
    NotReady,
    PreconditionFailed,
)
from kupe.core.etag import check_if_match, etag
from kupe.core.kubeconfig import build_kubeconfig
from kupe.core.pagination import cut_page, page_query
from kupe.core.phases import CONNECTABLE_PHASES, ClusterPhase
from kupe.core.quantity import parse_cpu, parse_memory, parse_storage
from kupe.core.versions import VersionCatalogue
from kupe.schemas.cluster import ClusterCreate, ClusterUpdate, ConnectionDetails, ResourcesInput
from kupe.server.db.engine import Database
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.db.refs import ObjectVersion, TenantRef
from kupe.server.db.repositories.cluster import ClusterRepository
from kupe.server.db.repositories.ledger import Ledger
from kupe.server.db.repositories.tenant import TenantRepository
from kupe.server.services.auth import Principal
from kupe.server.services.cluster_rules import ClusterFeatures, ClusterRules, check_immutable
from kupe.server.services.cluster_views import RenderedViews, cluster_view, render, render_page
from kupe.server.services.idempotency import StoredResponse
from kupe.server.services.plan import Amounts, PlanCatalogue
from kupe.server.services.unit import UnitOfWork

CAS_ATTEMPTS = 5
_PARSE = {"cpu": parse_cpu, "memory": parse_memory, "storage": parse_storage}
_AMOUNT_COLUMN = {"cpu": "cpu_millis", "memory": "memory_bytes", "storage": "storage_bytes"}


class ClusterService:
    def __init__(
        self,
        db: Database,
        plans: PlanCatalogue,
        versions: VersionCatalogue,
        clock: Clock,
        features: ClusterFeatures | None = None,
    ) -> None:
        self.db = db
        self.plans = plans
        self.versions = versions
        self.clock = clock
        self.features = features or ClusterFeatures()
        self.rules = ClusterRules(plans, versions, clock, self.features)
        self.views = RenderedViews()

    # -- reads -------------------------------------------------------------------------------

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[ClusterRow], str | None]:
        """A name-ordered page of clusters and the token for the next page, if any."""
        after, fetch = page_query(continue_token, limit)
        rows = await ClusterRepository(session, principal.tenant_id).list(after=after, limit=fetch)
        return cut_page(rows, limit, lambda row: row.name)

    async def list_json(
        self, principal: Principal, *, limit: int | None = None, continue_token: str | None = None
    ) -> str:
        """`list` rendered as the wire `ItemList`, reusing renderings of unchanged clusters.

        The page's versions come from the hot-read path where there is one; only clusters
        without a current rendering are loaded through a session."""
        after, fetch = page_query(continue_token, limit)
        if self.db.hot is not None:
            found = await self.db.hot.object_versions(
                ClusterRow, principal.tenant_id, after=after, limit=fetch
            )
            all_versions = [ObjectVersion(*version) for version in found]
        else:
            async with self.db.read() as session:
                repo = ClusterRepository(session, principal.tenant_id)
                all_versions = await repo.versions(after=after, limit=fetch)
        versions, token = cut_page(all_versions, limit, lambda v: v.name)
        bodies = [self.views.get(version) for version in versions]
        missing = [v.id for v, body in zip(versions, bodies, strict=True) if body is None]
        if not missing:
            return render_page([body for body in bodies if body is not None], token)
        async with self.db.read() as session:
            repo = ClusterRepository(session, principal.tenant_id)
            loaded = {row.id: row for row in await repo.by_ids(missing)}
            if len(loaded) < len(missing):
                # A cluster went away between the two reads: answer from one read instead.
                rows, token = await self.list(
                    session, principal, limit=limit, continue_token=continue_token
                )
                return render_page([self.views.render(row) for row in rows], token)
        rendered = [
            body if body is not None else self.views.render(loaded[version.id])
            for version, body in zip(versions, bodies, strict=True)
        ]
        return render_page(rendered, token)

    def require(self, version: ObjectVersion | None, name: str) -> ObjectVersion:
        """404 when the cluster looked up alongside authentication does not exist."""
        if version is None:
            raise NotFound(f"Cluster {name!r} not found")
        return version

    async def get_json(self, principal: Principal, version: ObjectVersion) -> tuple[int, str]:
        """The resourceVersion and wire JSON of the cluster `version` names (its current
        state, should it have changed since `version` was read)."""
        body = self.views.get(version)
        if body is not None:
            return version.resource_version, body
        async with self.db.read() as session:
            row = await self.get(session, principal, version.name)
        return row.resource_version, self.views.render(row)

    async def get(self, session: AsyncSession, principal: Principal, name: str) -> ClusterRow:
        row = await ClusterRepository(session, principal.tenant_id).get(name)
        if row is None:
            raise NotFound(f"Cluster {name!r} not found")
        return row

    async def connection_details(
        self, session: AsyncSession, principal: Principal, name: str
    ) -> ConnectionDetails:
        row = await self.get(session, principal, name)
        if row.deletion_requested_at is not None:
            raise ClusterTerminating()
        if row.phase == ClusterPhase.FAILED:
            raise Conflict("Cluster has failed; it will never become ready", code="CLUSTER_FAILED")
        if row.phase not in CONNECTABLE_PHASES or not row.endpoint or not row.ca_certificate:
            raise NotReady(headers={"Retry-After": "5"})
        return ConnectionDetails(
            endpoint=row.endpoint,
            certificate_authority=base64.b64encode(row.ca_certificate.encode()).decode(),
        )

    def kubeconfig(
        self, principal: Principal, name: str, details: ConnectionDetails, api_url: str
    ) -> dict[str, Any]:
        """The kubeconfig document; `api_url` is where its exec plugin reaches Kupe."""
        return build_kubeconfig(
            principal.tenant.name, name, details.endpoint, details.certificate_authority, api_url
        )

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self, unit: UnitOfWork, body: ClusterCreate, *, location_prefix: str
    ) -> StoredResponse:
        """Record a new cluster in phase Pending. Everything that needs no lock is worked out
        first; the tenant's quota lock is taken last, for the checks and the insert."""
        principal = unit.principal
        principal.require_admin()
        version = (
            self.versions.check_supported(body.version)
            if body.version is not None
            else self.versions.default()
        )
        plan = self.plans.get(principal.tenant.plan)
        if body.type == "dedicated" and not plan.dedicated_clusters:
            raise DedicatedUnsupported(
                f"The {plan.name} plan does not include dedicated clusters", field="type"
            )
        if body.high_availability:
            self.rules.check_high_availability()
        defaults = self.plans.defaults(plan.name)
        given = body.resources or ResourcesInput()
        cpu = given.cpu or defaults.cpu
        memory = given.memory or defaults.memory
        storage = given.storage or defaults.storage
        wanted = Amounts(parse_cpu(cpu), parse_memory(memory), parse_storage(storage))

        session = await unit.session()
        now = self.clock.now()
        cluster_id = uuid.uuid4().hex
        values = {
            "id": cluster_id,
            "tenant_id": principal.tenant_id,
            "name": body.name,
            "display_name": body.display_name,
            "type": body.type,
            "version": version,
            "cpu": given.cpu,
            "memory": given.memory,
            "storage": given.storage,
            "allocated_cpu": cpu,
            "allocated_memory": memory,
            "allocated_storage": storage,
            "cpu_millis": wanted.cpu_millis,
            "memory_bytes": wanted.memory_bytes,
            "storage_bytes": wanted.storage_bytes,
            "alerts": body.alerts,
            "high_availability": bool(body.high_availability),
            "ha_enabled_at": now if body.high_availability else None,
            "ha_replicas_ready": 0,
            "ha_replicas_desired": 1,
            "generation": 1,
            "observed_generation": 0,
            "resource_version": await self.db.next_resource_version(session),
            "created_at": now,
            "deletion_requested_at": None,
            "removed_at": None,
            "phase": ClusterPhase.PENDING,
            "kubernetes_version": None,
            "endpoint": None,
            "ca_certificate": None,
            "conditions": _initial_conditions(now),
            "metrics": {},
            "next_reconcile_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
            "failure_count": 0,
        }
        repo = ClusterRepository(session, principal.tenant_id)
        # The quota lock, held for one statement: the checks and the insert are one.
        await TenantRepository(session).lock(principal.tenant_id)
        try:
            inserted = await repo.insert_within(values, self.rules.limits(plan.name), plan.name)
        except IntegrityError:
            # Lost a race with a concurrent create of the same name.
            raise AlreadyExists("Cluster name already exists", field="name") from None
        if not inserted:
            await self._refused(session, principal, body.name, wanted)
        # Metered from this moment: the ledger is written in the same transaction.
        await Ledger(session).cluster_created(
            principal.tenant_id,
            cluster_id,
            cpu_millis=wanted.cpu_millis,
            memory_bytes=wanted.memory_bytes,
            storage_bytes=wanted.storage_bytes,
            at=now,
        )
        row = ClusterRow(**values)
        return StoredResponse(
            201, render_row(row), etag(row.resource_version), f"{location_prefix}/{row.name}"
        )

    async def _refused(
        self, session: AsyncSession, principal: Principal, name: str, wanted: Amounts
    ) -> NoReturn:
        """Why a create's insert found nothing to do: the name is taken, a limit would be
        exceeded, or the tenant changed (suspended, or moved to another plan) since the
        request authenticated."""
        repo = ClusterRepository(session, principal.tenant_id)
        if await repo.get(name) is not None:
            raise AlreadyExists("Cluster name already exists", field="name")
        tenant = await TenantRepository(session).by_id(principal.tenant_id)
        if tenant is None:
            raise NotFound("Tenant not found")
        current = replace(principal, tenant=TenantRef.of(tenant))
        current.require_admin()
        self.rules.check_limits(current, await repo.usage(), wanted, adding_cluster=True)
        raise Conflict("The tenant's plan changed while the cluster was created; retry")

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        name: str,
        patch: ClusterUpdate,
        *,
        if_match: str | None,
    ) -> ClusterRow:
        """Apply a merge patch of version/resources/alerts with compare-and-swap."""
        principal.require_admin()
        given = patch.model_fields_set
        repo = ClusterRepository(session, principal.tenant_id)
        for _attempt in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                raise ClusterTerminating("Cluster is terminating and can no longer be changed")
            check_immutable(row, patch, given)
            change = self.rules.change(row, patch, given)
            if change.empty:
                return row
            if row.phase == ClusterPhase.FAILED:
                raise Conflict(
                    "Cluster has failed; delete it and create it again", code="CLUSTER_FAILED"
                )
            if change.resizes:
                await TenantRepository(session).lock(principal.tenant_id)
                wanted = Amounts(
                    change.cpu_millis if change.cpu_millis is not None else row.cpu_millis,
                    change.memory_bytes if change.memory_bytes is not None else row.memory_bytes,
                    change.storage_bytes if change.storage_bytes is not None else row.storage_bytes,
                )
                usage = await repo.usage(excluding=row.id)
                self.rules.check_limits(principal, usage, wanted, adding_cluster=False)
            values = change.columns()
            values.update(
                generation=row.generation + 1,
                resource_version=await self.db.next_resource_version(session),
                next_reconcile_at=self.clock.now(),
            )
            if await repo.compare_and_set(row.id, row.resource_version, values):
                return await self.get(session, principal, name)
            if if_match is not None:
                raise PreconditionFailed()
            # A concurrent status write moved the version on: re-read, re-apply.
        raise Conflict("Cluster is changing too fast; retry the request")

    async def delete(
        self, session: AsyncSession, principal: Principal, name: str, *, if_match: str | None
    ) -> None:
        """Mark the cluster Terminating; deleting it again is a no-op."""
        principal.require_admin()
        repo = ClusterRepository(session, principal.tenant_id)
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                return
            if await repo.compare_and_set(
                row.id, row.resource_version, await self._deletion(session, row)
            ):
                return
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Cluster is changing too fast; retry the request")

    async def delete_all(self, session: AsyncSession, tenant_id: str) -> int:
        """Mark every live cluster of a tenant Terminating (its deletion); returns how many."""
        repo = ClusterRepository(session, tenant_id)
        count = 0
        for row in await repo.list():
            if row.deletion_requested_at is None:
                await repo.compare_and_set(
                    row.id, row.resource_version, await self._deletion(session, row)
                )
            count += 1
        return count

    async def _deletion(self, session: AsyncSession, row: ClusterRow) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "deletion_requested_at": now,
            "phase": ClusterPhase.TERMINATING,
            "conditions": set_condition(
                row.conditions, "Ready", False, "Terminating", "Cluster is being deleted", now
            ),
            "resource_version": await self.db.next_resource_version(session),
            "next_reconcile_at": now,
        }


def render_row(row: ClusterRow) -> str:
    return render(cluster_view(row))


def _initial_conditions(now: datetime) -> list[Condition]:
    conditions: list[Condition] = []
    for type_ in ("Ready", "Provisioned", "UpToDate"):
        conditions = set_condition(
            conditions, type_, False, "Pending", "Waiting for the reconciler", now
        )
    return conditions
