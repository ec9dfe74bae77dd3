"""Request scopes: authenticate the caller, open the session the request needs, and afterwards
record the key's use and wake the reconcilers (writes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.errors import TenantTerminating
from kupe.core.phases import TenantPhase
from kupe.server.db.refs import ObjectVersion
from kupe.server.db.repositories.access import NamedObject
from kupe.server.runtime import Runtime
from kupe.server.services import audit
from kupe.server.services.auth import Principal
from kupe.server.services.console_credential import Credential
from kupe.server.services.unit import UnitOfWork

log = structlog.get_logger("kupe")


def _open(principal: Principal) -> None:
    """Keys and members of a tenant being deleted stop working at once."""
    if principal.tenant.phase is TenantPhase.TERMINATING and not principal.operator:
        raise TenantTerminating()


class RequestScopes:
    """The ways a request meets the database, each authenticated first."""

    def __init__(self, runtime: Runtime) -> None:
        self.db = runtime.db
        self.clock = runtime.clock
        self.auth = runtime.services.auth
        self.sessions = runtime.services.console_sessions
        self.wake = runtime.wake

    @asynccontextmanager
    async def reading(
        self, authorization: Credential, tenant: str, *, while_terminating: bool = False
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """A read session and the authenticated caller. A tenant being deleted is closed to
        everything but reading the tenant itself (`while_terminating`)."""
        principal: Principal | None = None
        try:
            async with self.db.read() as session:
                principal = await self.auth.authenticate(session, authorization, tenant)
                audit.identified(principal)
                if not while_terminating:
                    _open(principal)
                yield session, principal
        finally:
            if principal is not None:
                await self._record_use(principal)

    @asynccontextmanager
    async def polling(
        self,
        authorization: Credential,
        tenant: str,
        target: type[NamedObject],
        name: str = "",
    ) -> AsyncIterator[tuple[Principal, ObjectVersion | None]]:
        """The authenticated caller of a poll (a GET of object `name` of `target`, or a list
        of the tenant's objects) and, for a GET, the object's version (None when there is no
        such object), found in one round trip on the hot-read path where there is one."""
        principal: Principal | None = None
        try:
            found = (
                await self.auth.authenticate_hot(self.db.hot, authorization, tenant, target, name)
                if self.db.hot is not None
                else None
            )
            if found is None:
                async with self.db.read() as session:
                    # An empty name matches no object: a list's version is None.
                    found = await self.auth.authenticate_for(
                        session, authorization, tenant, target, name
                    )
            principal = found[0]
            audit.identified(principal)
            _open(principal)
            yield found
        finally:
            if principal is not None:
                await self._record_use(principal)

    @asynccontextmanager
    async def working(
        self, authorization: Credential, tenant: str, *, while_terminating: bool = False
    ) -> AsyncIterator[UnitOfWork]:
        """A write request's unit of work (see UnitOfWork): the caller is authenticated on
        the read path, the write transaction begins when the service asks for it, commits when
        the block ends and rolls back on an error; the reconcilers are woken after a commit."""
        principal = await self._authenticate(authorization, tenant)
        audit.identified(principal)
        staged = None
        try:
            if not while_terminating:
                _open(principal)
            async with AsyncExitStack() as stack:
                unit = UnitOfWork(principal, self.db.write, stack)
                yield unit
                started = unit.started
                if started:
                    # The entry commits with the mutation, or not at all.
                    staged = audit.stage(await unit.session(), self.clock.now())
            if staged is not None:
                staged.committed = True
        finally:
            await self._record_use(principal)
        if started:
            self.wake()

    @asynccontextmanager
    async def writing(
        self, authorization: Credential, tenant: str, *, while_terminating: bool = False
    ) -> AsyncIterator[tuple[AsyncSession, Principal]]:
        """`working`, for services that write from the start: the session at once."""
        async with self.working(authorization, tenant, while_terminating=while_terminating) as unit:
            yield await unit.session(), unit.principal

    async def _authenticate(self, authorization: Credential, tenant: str) -> Principal:
        if self.db.hot is not None:
            found = await self.auth.authenticate_hot(self.db.hot, authorization, tenant, None)
            if found is not None:
                return found[0]
        async with self.db.read() as session:
            return await self.auth.authenticate(session, authorization, tenant)

    async def _record_use(self, principal: Principal) -> None:
        """Keep an API key's lastUsedAt (and a console session's last-seen time), in its own
        short transaction after the request's, and at most once a minute per key or session."""
        key_id = self.auth.claim_touch(principal)
        session_hash = self.sessions.claim_touch(principal)
        if key_id is None and session_hash is None:
            return
        try:
            async with self.db.write() as session:
                if key_id is not None:
                    await self.auth.record_use(session, key_id)
                if session_hash is not None:
                    await self.sessions.touch(session, session_hash)
        except Exception as exc:  # bookkeeping must never fail the request
            log.warning("apikey.last_used_failed", key_id=key_id, error=type(exc).__name__)
