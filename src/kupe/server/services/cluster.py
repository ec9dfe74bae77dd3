"""Cluster business rules: validation beyond the schema, plan limits, optimistic locking,
idempotent creates. Only records desired state; the reconciler does the rest."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import (
    AlreadyExists,
    ClusterTerminating,
    Conflict,
    DedicatedUnsupported,
    IdempotencyKeyReused,
    ImmutableField,
    NotFound,
    NotReady,
    PlanLimitExceeded,
    PreconditionFailed,
    ValidationFailed,
)
from kupe.core.etag import check_if_match, etag
from kupe.core.kubeconfig import build_kubeconfig
from kupe.core.merge_patch import merge_patch
from kupe.core.pagination import cut_page, page_query
from kupe.core.quantity import format_bytes, format_cpu, parse_cpu, parse_memory, parse_storage
from kupe.core.versions import DEFAULT_VERSION, check_supported, check_upgrade
from kupe.schemas.cluster import (
    Cluster,
    ClusterCreate,
    ClusterUpdate,
    ConnectionDetails,
)
from kupe.server.db.engine import Database
from kupe.server.db.models import Cluster as ClusterRow
from kupe.server.db.models import IdempotencyRecord
from kupe.server.db.repository import (
    ClusterRepository,
    ClusterVersion,
    IdempotencyRepository,
    TenantRepository,
    Usage,
)
from kupe.server.services.auth import Principal
from kupe.server.services.conditions import set_condition
from kupe.server.services.plan import Amounts, PlanCatalogue

IDEMPOTENCY_WINDOW = timedelta(hours=24)
CONNECTABLE_PHASES = frozenset({"Running", "Upgrading", "Degraded"})
CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredResponse:
    """A response as it was (or will be) sent: replayed verbatim for a repeated Idempotency-Key."""

    status: int
    body: str
    etag: str | None
    location: str | None


def cluster_view(row: ClusterRow) -> Cluster:
    """The wire form of a cluster row."""
    return Cluster.model_validate(
        {
            "name": row.name,
            "displayName": row.display_name,
            "type": row.type,
            "version": row.version,
            "resources": {"cpu": row.cpu, "memory": row.memory, "storage": row.storage},
            "alerts": row.alerts,
            "resourceVersion": str(row.resource_version),
            "generation": row.generation,
            "createdAt": row.created_at.replace(microsecond=0),
            "status": {
                "phase": row.phase,
                "kubernetesVersion": row.kubernetes_version,
                "endpoint": row.endpoint,
                "observedGeneration": row.observed_generation,
                "conditions": row.conditions,
                "metrics": row.metrics,
            },
        }
    )


def render(model: Cluster) -> str:
    return model.model_dump_json(by_alias=True, exclude_none=True)


def render_page(items: list[str], continue_token: str | None) -> str:
    """`ItemList[Cluster]` as JSON from already-rendered items (byte for byte what
    `ItemList(items=..., continue_=...).model_dump_json(by_alias=True, exclude_none=True)`
    gives)."""
    tail = (
        ""
        if continue_token is None
        else f',"continue":{json.dumps(continue_token, ensure_ascii=False)}'
    )
    return f'{{"items":[{",".join(items)}]{tail}}}'


class RenderedViews:
    """The wire JSON of cluster rows, by id, with the resourceVersion it renders.

    Every change to what a cluster shows moves its resourceVersion (the contract ETags and 304s
    already rely on), so a rendering stored under the row's current version is the rendering of
    the row: reads look the version up in the database and skip loading and re-validating the
    row. One entry per cluster (a new version replaces the old) and at most `max_chars` of JSON
    in all (~8 MB, some 10,000 clusters); the renderings made longest ago go first, which also
    retires those of clusters deleted since."""

    def __init__(self, max_chars: int = 8 * 2**20) -> None:
        self.max_chars = max_chars
        self._views: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._views)

    def get(self, version: ClusterVersion) -> str | None:
        found = self._views.get(version.id)
        return found[1] if found is not None and found[0] == version.resource_version else None

    def render(self, row: ClusterRow) -> str:
        """Render `row` and remember the result."""
        body = render(cluster_view(row))
        views = self._views
        replaced = views.pop(row.id, None)
        if replaced is not None:
            self._chars -= len(replaced[1])
        views[row.id] = (row.resource_version, body)
        self._chars += len(body)
        while self._chars > self.max_chars and len(views) > 1:
            _id, (_version, stale) = views.popitem(last=False)
            self._chars -= len(stale)
        return body


def request_hash(body: ClusterCreate) -> str:
    return hashlib.sha256(body.model_dump_json(by_alias=True).encode()).hexdigest()


class ClusterService:
    def __init__(self, db: Database, plans: PlanCatalogue, clock: Clock) -> None:
        self.db = db
        self.plans = plans
        self.clock = clock
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
        self,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> str:
        """`list` rendered as the wire `ItemList`, reusing renderings of unchanged clusters.

        The page's versions come from the hot-read path where there is one; only clusters
        without a current rendering are loaded through a session."""
        after, fetch = page_query(continue_token, limit)
        if self.db.hot is not None:
            found = await self.db.hot.cluster_versions(
                principal.tenant_id, after=after, limit=fetch
            )
            all_versions = [ClusterVersion(*version) for version in found]
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

    def require(self, version: ClusterVersion | None, name: str) -> ClusterVersion:
        """404 when the cluster looked up alongside authentication does not exist."""
        if version is None:
            raise NotFound(f"Cluster {name!r} not found")
        return version

    async def get_json(self, principal: Principal, version: ClusterVersion) -> tuple[int, str]:
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
        if row.phase == "Failed":
            raise Conflict("Cluster has failed; it will never become ready", code="CLUSTER_FAILED")
        if row.phase not in CONNECTABLE_PHASES or not row.endpoint or not row.ca_certificate:
            raise NotReady(headers={"Retry-After": "5"})
        return ConnectionDetails(
            endpoint=row.endpoint,
            certificate_authority=base64.b64encode(row.ca_certificate.encode()).decode(),
        )

    def kubeconfig(
        self, principal: Principal, name: str, details: ConnectionDetails
    ) -> dict[str, Any]:
        return build_kubeconfig(
            principal.tenant.name, name, details.endpoint, details.certificate_authority
        )

    # -- writes ------------------------------------------------------------------------------

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        body: ClusterCreate,
        *,
        idempotency_key: str | None,
        location_prefix: str,
    ) -> StoredResponse:
        """Record a new cluster in phase Pending (or replay the response to a repeated key)."""
        principal.require_admin()
        now = self.clock.now()
        digest = request_hash(body)
        idem = IdempotencyRepository(session, principal.tenant_id)
        if idempotency_key is not None:
            earlier = await idem.get(idempotency_key, newer_than=now - IDEMPOTENCY_WINDOW)
            if earlier is not None:
                if earlier.request_hash != digest:
                    raise IdempotencyKeyReused()
                return StoredResponse(
                    earlier.status_code, earlier.response_body, earlier.etag, earlier.location
                )
            await idem.forget_older_than(idempotency_key, now - IDEMPOTENCY_WINDOW)

        version = check_supported(body.version) if body.version is not None else DEFAULT_VERSION
        plan = self.plans.get(principal.tenant.plan)
        if body.type == "dedicated" and not plan.dedicated_clusters:
            raise DedicatedUnsupported(
                f"The {plan.name} plan does not include dedicated clusters", field="type"
            )
        defaults = self.plans.defaults(plan.name)
        given = body.resources
        cpu = (given.cpu if given else None) or defaults.cpu
        memory = (given.memory if given else None) or defaults.memory
        storage = (given.storage if given else None) or defaults.storage
        wanted = Amounts(parse_cpu(cpu), parse_memory(memory), parse_storage(storage))

        await TenantRepository(session).lock(principal.tenant_id)
        repo = ClusterRepository(session, principal.tenant_id)
        if await repo.get(body.name) is not None:
            raise AlreadyExists("Cluster name already exists", field="name")
        usage = await repo.usage()
        self._check_limits(plan.name, usage, wanted, adding_cluster=True)

        row = ClusterRow(
            id=uuid.uuid4().hex,
            tenant_id=principal.tenant_id,
            name=body.name,
            display_name=body.display_name,
            type=body.type,
            version=version,
            cpu=cpu,
            memory=memory,
            storage=storage,
            cpu_millis=wanted.cpu_millis,
            memory_bytes=wanted.memory_bytes,
            storage_bytes=wanted.storage_bytes,
            alerts=body.alerts,
            generation=1,
            observed_generation=0,
            resource_version=await self.db.next_resource_version(session),
            created_at=now,
            phase="Pending",
            conditions=_initial_conditions(now),
            metrics={},
            next_reconcile_at=now,
            failure_count=0,
        )
        repo.add(row)
        location = f"{location_prefix}/{row.name}"
        response = StoredResponse(
            201, render(cluster_view(row)), etag(row.resource_version), location
        )
        if idempotency_key is not None:
            idem.add(
                IdempotencyRecord(
                    tenant_id=principal.tenant_id,
                    key=idempotency_key,
                    request_hash=digest,
                    status_code=response.status,
                    response_body=response.body,
                    etag=response.etag,
                    location=response.location,
                    created_at=now,
                )
            )
        try:
            await session.flush()
        except IntegrityError:
            # Lost a race with a concurrent create of the same name (or the same key).
            raise AlreadyExists("Cluster name already exists", field="name") from None
        return response

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
        fields = patch.model_fields_set
        for attempt in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                raise ClusterTerminating("Cluster is terminating and can no longer be changed")
            _check_immutable(row, patch, fields)
            values = self._changes(row, patch, fields)
            if not values:
                return row
            if row.phase == "Failed":
                raise Conflict(
                    "Cluster has failed; delete it and create it again", code="CLUSTER_FAILED"
                )
            if {"cpu_millis", "memory_bytes", "storage_bytes"} & values.keys():
                await TenantRepository(session).lock(principal.tenant_id)
                usage = await ClusterRepository(session, principal.tenant_id).usage(
                    excluding=row.id
                )
                wanted = Amounts(
                    values.get("cpu_millis", row.cpu_millis),
                    values.get("memory_bytes", row.memory_bytes),
                    values.get("storage_bytes", row.storage_bytes),
                )
                self._check_limits(principal.tenant.plan, usage, wanted, adding_cluster=False)
            values.update(
                generation=row.generation + 1,
                resource_version=await self.db.next_resource_version(session),
                next_reconcile_at=self.clock.now(),
            )
            repo = ClusterRepository(session, principal.tenant_id)
            if await repo.compare_and_set(row.id, row.resource_version, values):
                return await self.get(session, principal, name)
            if if_match is not None:
                raise PreconditionFailed()
            del attempt  # a concurrent status write moved the version on: re-read, re-apply
        raise Conflict("Cluster is changing too fast; retry the request")

    async def delete(
        self, session: AsyncSession, principal: Principal, name: str, *, if_match: str | None
    ) -> None:
        """Mark the cluster Terminating; deleting it again is a no-op."""
        principal.require_admin()
        for _ in range(CAS_ATTEMPTS):
            row = await self.get(session, principal, name)
            check_if_match(if_match, row.resource_version)
            if row.deletion_requested_at is not None:
                return
            now = self.clock.now()
            conditions = set_condition(
                row.conditions, "Ready", False, "Terminating", "Cluster is being deleted", now
            )
            values = {
                "deletion_requested_at": now,
                "phase": "Terminating",
                "conditions": conditions,
                "resource_version": await self.db.next_resource_version(session),
                "next_reconcile_at": now,
            }
            repo = ClusterRepository(session, principal.tenant_id)
            if await repo.compare_and_set(row.id, row.resource_version, values):
                return
            if if_match is not None:
                raise PreconditionFailed()
        raise Conflict("Cluster is changing too fast; retry the request")

    # -- rules -------------------------------------------------------------------------------

    def _changes(self, row: ClusterRow, patch: ClusterUpdate, fields: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "version" in fields:
            if patch.version is None:
                raise ValidationFailed("version cannot be null", field="version")
            check_upgrade(row.version, patch.version)
            if patch.version != row.version:
                values["version"] = patch.version
        if "resources" in fields:
            if patch.resources is None:
                raise ValidationFailed("resources cannot be null", field="resources")
            given = patch.resources
            for key, parse in (
                ("cpu", parse_cpu),
                ("memory", parse_memory),
                ("storage", parse_storage),
            ):
                if key not in given.model_fields_set:
                    continue
                text = getattr(given, key)
                if text is None:
                    raise ValidationFailed(f"{key} cannot be null", field=f"resources.{key}")
                amount = parse(text)
                column = {
                    "cpu": "cpu_millis",
                    "memory": "memory_bytes",
                    "storage": "storage_bytes",
                }[key]
                if text != getattr(row, key):
                    values[key] = text
                if amount != getattr(row, column):
                    values[column] = amount
        if "alerts" in fields:
            alerts = None if patch.alerts is None else merge_patch(row.alerts or {}, patch.alerts)
            if alerts != row.alerts:
                values["alerts"] = alerts
        return values

    def _check_limits(
        self, plan_name: str, usage: Usage, wanted: Amounts, *, adding_cluster: bool
    ) -> None:
        plan = self.plans.get(plan_name)
        if adding_cluster and plan.max_clusters is not None and usage.clusters >= plan.max_clusters:
            raise PlanLimitExceeded(
                f"The {plan.name} plan allows at most {plan.max_clusters} clusters and the "
                f"tenant already has {usage.clusters}"
            )
        pool = self.plans.pool(plan.name)
        if pool is None:
            return
        held = Amounts(usage.cpu_millis, usage.memory_bytes, usage.storage_bytes)
        total = held + wanted
        checks = (
            ("cpu", total.cpu_millis, pool.cpu_millis, held.cpu_millis, format_cpu),
            ("memory", total.memory_bytes, pool.memory_bytes, held.memory_bytes, format_bytes),
            ("storage", total.storage_bytes, pool.storage_bytes, held.storage_bytes, format_bytes),
        )
        for field, need, limit, already, fmt in checks:
            if need > limit:
                raise PlanLimitExceeded(
                    f"{field}: this request would bring the tenant to {fmt(need)} of the "
                    f"{plan.name} plan's pool of {fmt(limit)} ({fmt(already)} already allocated), "
                    f"exceeding it by {fmt(need - limit)}",
                    field=f"resources.{field}",
                )


def _check_immutable(row: ClusterRow, patch: ClusterUpdate, fields: set[str]) -> None:
    for attr, wire in (("name", "name"), ("display_name", "displayName"), ("type", "type")):
        if attr in fields and getattr(patch, attr) != getattr(row, attr):
            raise ImmutableField(f"{wire} is immutable", field=wire)


def _initial_conditions(now: Any) -> list[dict[str, Any]]:
    conditions: list[dict[str, Any]] = []
    for type_ in ("Ready", "Provisioned", "UpToDate"):
        conditions = set_condition(
            conditions, type_, False, "Pending", "Waiting for the reconciler", now
        )
    return conditions
