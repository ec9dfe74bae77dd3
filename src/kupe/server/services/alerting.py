"""Alertmanager configuration rules (API §9): receivers, routes and global, each with its own
version; every write is checked by Alertmanager's own loader on the tenant's effective
configuration before it is stored, and recorded for the reconciler to push.

Writes serialise per tenant on the config row (compare-and-set on its resourceVersion; after a
lost race, under the row's lock): the check always judges the configuration the write turns
into.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import (
    Conflict,
    NotFound,
    PlanLimitExceeded,
    PreconditionFailed,
    ServiceUnavailable,
    ValidationFailed,
)
from kupe.core.etag import check_if_match
from kupe.server.alertmanager.checker import CheckerUnavailable, ConfigChecker
from kupe.server.alertmanager.config import (
    DEFAULT_RECEIVER,
    RECEIVER_NAME,
    file_reference,
    mask,
    private_url,
    restore,
    route_receivers,
    unwritable_text,
)
from kupe.server.alertmanager.documents import (
    Documents,
    StoredReceiver,
    open_documents,
    seal_global,
    seal_receiver,
)
from kupe.server.db.engine import Database
from kupe.server.db.models import AlertmanagerReceiver
from kupe.server.db.repositories.alerting import AlertingRepository
from kupe.server.sealing import Sealer, SealingError
from kupe.server.services.auth import Principal
from kupe.server.services.plan import PlanCatalogue
from kupe.server.services.unit import UnitOfWork

CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class Versioned:
    """A document as the wire shows it (credentials masked) and its ETag's version."""

    body: Any
    version: int


@dataclass(frozen=True)
class _Change:
    """What a write turns the documents into, and the rows it writes."""

    after: Documents
    receiver: str | None = None  # the receiver written (or deleted: `deleted`)
    deleted: bool = False
    routes: bool = False
    global_: bool = False


class AlertingService:
    def __init__(
        self,
        db: Database,
        plans: PlanCatalogue,
        clock: Clock,
        sealer: Sealer,
        checker: ConfigChecker | None,
        *,
        allow_private: bool = False,
    ) -> None:
        self.db = db
        self.plans = plans
        self.clock = clock
        self.sealer = sealer
        self.checker = checker
        # Receiver URLs on loopback or private addresses (KUPE_WEBHOOK_ALLOW_PRIVATE).
        self.allow_private = allow_private

    async def documents(self, session: AsyncSession, tenant_id: str) -> Documents:
        stored = await AlertingRepository(session, tenant_id).stored()
        try:
            return open_documents(self.sealer, stored)
        except SealingError:
            # An operator's problem (another server key), never the caller's: say so.
            raise ServiceUnavailable(
                "The stored alerting configuration does not open under this server's key "
                "(KUPE_ALERTING__SECRET_KEY must be the same on every replica)"
            ) from None

    # -- reads ---------------------------------------------------------------------------

    async def receivers(
        self, session: AsyncSession, principal: Principal
    ) -> builtins.list[tuple[str, Versioned]]:
        docs = await self.documents(session, principal.tenant_id)
        return [
            (name, Versioned(_receiver_view(name, r.body), r.resource_version))
            for name, r in sorted(docs.receivers.items())
        ]

    async def receiver(self, session: AsyncSession, principal: Principal, name: str) -> Versioned:
        docs = await self.documents(session, principal.tenant_id)
        found = docs.receivers.get(name)
        if found is None:
            raise NotFound(f"Receiver {name!r} not found")
        return Versioned(_receiver_view(name, found.body), found.resource_version)

    async def routes(self, session: AsyncSession, principal: Principal) -> Versioned:
        docs = await self.documents(session, principal.tenant_id)
        return Versioned({"items": docs.routes}, docs.routes_version)

    async def global_(self, session: AsyncSession, principal: Principal) -> Versioned:
        docs = await self.documents(session, principal.tenant_id)
        return Versioned(mask(docs.global_), docs.global_version)

    async def config(self, session: AsyncSession, principal: Principal) -> Versioned:
        docs = await self.documents(session, principal.tenant_id)
        return Versioned(mask(docs.effective()), docs.version)

    # -- writes --------------------------------------------------------------------------

    async def put_receiver(
        self, unit: UnitOfWork, name: str, body: dict[str, Any], *, if_match: str | None
    ) -> Versioned:
        """Create or replace receiver `name` (the path name wins over one in the body)."""
        unit.principal.require_admin()
        if not RECEIVER_NAME.match(name) or name == DEFAULT_RECEIVER:
            raise ValidationFailed(
                "a receiver name is 1-63 letters, digits, '.', '_' or '-', starting with a "
                f"letter or digit (and not {DEFAULT_RECEIVER!r}, Kupe's own)",
                field="name",
            )
        given = {k: v for k, v in body.items() if k != "name"}
        self._acceptable(given, "")
        limit = self.plans.get(unit.principal.tenant.plan).observability_pool.max_receivers
        if limit is not None and limit < 0:
            limit = None  # -1, as the wire writes unlimited

        def change(docs: Documents) -> _Change | None:
            existing = docs.receivers.get(name)
            _precondition(if_match, existing.resource_version if existing else None)
            if existing is None and limit is not None and len(docs.receivers) >= limit:
                raise PlanLimitExceeded(
                    f"Your plan allows {limit} alert receivers and the tenant has "
                    f"{len(docs.receivers)}; delete one or change plan",
                    field="maxReceivers",
                )
            restored = restore(given, existing.body if existing else None)
            if existing is not None and restored == existing.body:
                return None
            receivers = {**docs.receivers, name: StoredReceiver(restored, 0)}
            return _Change(replace(docs, receivers=receivers), receiver=name)

        docs = await self._write(unit, change)
        stored = docs.receivers[name]
        return Versioned(_receiver_view(name, stored.body), stored.resource_version)

    async def delete_receiver(self, unit: UnitOfWork, name: str, *, if_match: str | None) -> None:
        """Delete receiver `name`; 409 while a route names it."""
        unit.principal.require_admin()

        def change(docs: Documents) -> _Change | None:
            existing = docs.receivers.get(name)
            if existing is None:
                raise NotFound(f"Receiver {name!r} not found")
            check_if_match(if_match, existing.resource_version)
            for where, receiver in route_receivers(docs.routes):
                if receiver == name:
                    raise Conflict(
                        f"Receiver {name!r} is used by route {where.removesuffix('.receiver')}; "
                        "change the routes first",
                        code="RECEIVER_IN_USE",
                    )
            receivers = {k: v for k, v in docs.receivers.items() if k != name}
            return _Change(replace(docs, receivers=receivers), receiver=name, deleted=True)

        await self._write(unit, change, check=False)

    async def put_routes(
        self, unit: UnitOfWork, items: builtins.list[Any] | None, *, if_match: str | None
    ) -> Versioned:
        """Replace the child routes of the tenant's root route (None clears them)."""
        unit.principal.require_admin()
        routes = list(items or [])
        for index, route in enumerate(routes):
            if not isinstance(route, dict):
                raise ValidationFailed("a route is an object", field=f"items.{index}")
        self._acceptable(routes, "items")

        def change(docs: Documents) -> _Change | None:
            _precondition(if_match, docs.routes_version)
            for where, receiver in route_receivers(routes):
                if receiver != DEFAULT_RECEIVER and receiver not in docs.receivers:
                    raise ValidationFailed(
                        f"there is no receiver {receiver!r} in this tenant", field=where
                    )
            if docs.exists and routes == docs.routes:
                return None
            return _Change(replace(docs, routes=routes), routes=True)

        docs = await self._write(unit, change)
        return Versioned({"items": docs.routes}, docs.routes_version)

    async def put_global(
        self, unit: UnitOfWork, body: dict[str, Any], *, if_match: str | None
    ) -> Versioned:
        """Replace the global section (`{}` clears it)."""
        unit.principal.require_admin()
        self._acceptable(body, "")

        def change(docs: Documents) -> _Change | None:
            _precondition(if_match, docs.global_version)
            restored = restore(body, docs.global_)
            if docs.exists and restored == docs.global_:
                return None
            return _Change(replace(docs, global_=restored), global_=True)

        docs = await self._write(unit, change)
        return Versioned(mask(docs.global_), docs.global_version)

    # -- the one write path ----------------------------------------------------------------

    async def _write(
        self,
        unit: UnitOfWork,
        decide: Callable[[Documents], _Change | None],
        *,
        check: bool = True,
    ) -> Documents:
        tenant_id = unit.principal.tenant_id
        for _ in range(CAS_ATTEMPTS):
            docs = await self._read(unit, tenant_id)
            change = decide(docs)
            if change is None:
                return docs
            if check:
                await self._check(change.after)
            session = await unit.session()
            repo = AlertingRepository(session, tenant_id)
            expected = docs.version
            now = self.clock.now()
            if not docs.exists:
                expected = await self.db.next_resource_version(session)
                await repo.ensure_config(uuid.uuid4().hex, expected, now)
            version = await self.db.next_resource_version(session)
            values: dict[str, Any] = {
                "resource_version": version,
                "generation": docs.generation + 1,
                "next_reconcile_at": now,
                "failure_count": 0,
            }
            if change.routes:
                values |= {"routes": change.after.routes, "routes_version": version}
            if change.global_:
                values |= {
                    "global_sealed": seal_global(self.sealer, tenant_id, change.after.global_),
                    "global_version": version,
                }
            if not await repo.compare_and_set(expected, values):
                continue
            if change.receiver is not None:
                await self._write_receiver(repo, docs, change, version)
            return await self.documents(session, tenant_id)
        raise Conflict("The alerting configuration is changing too fast; retry the request")

    async def _write_receiver(
        self, repo: AlertingRepository, before: Documents, change: _Change, version: int
    ) -> None:
        name = change.receiver
        assert name is not None
        if change.deleted:
            await repo.delete_receiver(name)
            return
        sealed = seal_receiver(self.sealer, repo.tenant_id, name, change.after.receivers[name].body)
        if name in before.receivers:
            await repo.replace_receiver(name, sealed, version)
            return
        repo.add_receiver(
            AlertmanagerReceiver(
                id=uuid.uuid4().hex,
                tenant_id=repo.tenant_id,
                name=name,
                sealed=sealed,
                resource_version=version,
                created_at=self.clock.now(),
            )
        )
        await repo.session.flush()

    async def _read(self, unit: UnitOfWork, tenant_id: str) -> Documents:
        """Optimistic first (no lock while Alertmanager checks); after a lost race, under the
        config row's lock, so the next attempt cannot lose again."""
        if unit.started:
            session = await unit.session()
            await AlertingRepository(session, tenant_id).lock_config()
            return await self.documents(session, tenant_id)
        async with self.db.read() as session:
            return await self.documents(session, tenant_id)

    def _acceptable(self, value: Any, where: str) -> None:
        bad_text = unwritable_text(value, where)
        if bad_text is not None:
            raise ValidationFailed(
                "text must not contain NUL characters or unpaired surrogates", field=bad_text
            )
        _no_files(value, where)
        if self.allow_private:
            return
        found = private_url(value, where)
        if found is not None:
            raise ValidationFailed(
                "URLs on loopback, private or link-local addresses are not accepted on this "
                "installation",
                field=found,
            )

    async def _check(self, docs: Documents) -> None:
        if self.checker is None:
            raise ServiceUnavailable(
                "Alertmanager's configuration checker is not available on this server; "
                "nothing was stored"
            )
        try:
            problem = await self.checker.check(docs.effective())
        except CheckerUnavailable as exc:
            raise ServiceUnavailable(f"{exc}; nothing was stored") from None
        if problem is not None:
            raise ValidationFailed(f"Alertmanager refused the configuration: {problem}")


def _receiver_view(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **mask(body)}


def _precondition(if_match: str | None, version: int | None) -> None:
    """If-Match on a document: 412 unless it names the current version (a document that does
    not exist matches nothing, not even `*`)."""
    if if_match is None:
        return
    if version is None:
        raise PreconditionFailed()
    check_if_match(if_match, version)


def _no_files(value: Any, where: str) -> None:
    found = file_reference(value, where)
    if found is not None:
        raise ValidationFailed(
            "fields naming files on Kupe's host are not accepted; give the value itself "
            "(it is stored encrypted and masked in responses)",
            field=found,
        )
