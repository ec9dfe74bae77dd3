"""A write request's unit of work: the caller, and a transaction begun when first needed.

Services work out everything that needs no lock first and only then ask for the session, so
the write transaction (SQLite's one-writer lock, PostgreSQL's row locks) lasts no longer than
the statements that need it. The request scope that made the unit commits it at the end, or
rolls it back on an error; services never commit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from sqlalchemy.ext.asyncio import AsyncSession

from kupe.server.db.outbox import set_actor
from kupe.server.services.auth import Principal


class UnitOfWork:
    def __init__(
        self,
        principal: Principal,
        begin: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        stack: AsyncExitStack,
    ) -> None:
        self.principal = principal
        self._begin = begin
        self._stack = stack
        self._session: AsyncSession | None = None

    @property
    def started(self) -> bool:
        return self._session is not None

    async def session(self) -> AsyncSession:
        """The unit's write session; the transaction begins on the first call."""
        if self._session is None:
            self._session = await self._stack.enter_async_context(self._begin())
            set_actor(self._session.sync_session, self.principal.actor)
        return self._session
