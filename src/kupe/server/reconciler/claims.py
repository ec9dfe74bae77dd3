"""The claims one process holds, and their heartbeat.

Each claim is a kind, an item and the lease token it was claimed under, with the time until
which it is surely still ours. The heartbeat extends every held lease, kind by kind; a claim
whose lease could not be extended is forgotten, and the worker handling it stops before it
touches the outside world again (`check` raises LeaseLost).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import count

import structlog

from kupe.core.clock import Clock
from kupe.server.db.engine import Database
from kupe.server.db.leases import WorkItem
from kupe.server.reconciler.kind import AnyKind, LeaseLost

log = structlog.get_logger("kupe.reconciler")
ClaimKey = tuple[str, str, str]  # kind, item id, lease token


def claim_key(kind: AnyKind, item: WorkItem) -> ClaimKey:
    return (kind.name, item.id, item.lease)


class Claims:
    """The leases this process holds, and the tokens it claims under."""

    def __init__(self, db: Database, clock: Clock, lease_seconds: float) -> None:
        self.db = db
        self.clock = clock
        self.lease_seconds = lease_seconds
        # Fits lease_owner (64) with the ":<n>" of each claim appended.
        self.owner = f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tokens = count(1)
        self._deadline: dict[ClaimKey, datetime] = {}
        self._kinds: dict[str, AnyKind] = {}

    def __contains__(self, key: ClaimKey) -> bool:
        return key in self._deadline

    def __len__(self) -> int:
        return len(self._deadline)

    def new_token(self) -> str:
        return f"{self.owner}:{next(self._tokens)}"

    def lease_until(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.lease_seconds)

    def hold(self, kind: AnyKind, items: Sequence[WorkItem], lease_until: datetime) -> None:
        self._kinds[kind.name] = kind
        for item in items:
            self._deadline[claim_key(kind, item)] = lease_until

    def release(self, key: ClaimKey) -> None:
        self._deadline.pop(key, None)

    def check(self, key: ClaimKey) -> None:
        """Raise LeaseLost unless the claim is surely still ours for a while: it was not taken
        over, and its lease has a safety margin left (others' clocks may run a little ahead)."""
        deadline = self._deadline.get(key)
        margin = timedelta(seconds=self.lease_seconds / 6)
        if deadline is None or self.clock.now() >= deadline - margin:
            raise LeaseLost(key[1])

    async def heartbeat(self) -> set[ClaimKey]:
        """Extend every held lease; forget (and so stop) the claims no longer ours. Returns
        the claims still held."""
        by_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for kind_name, item_id, lease in list(self._deadline):
            by_kind[kind_name].append((item_id, lease))
        if not by_kind:
            return set()
        lease_until = self.lease_until()
        held: set[ClaimKey] = set()
        async with self.db.write() as session:
            for kind_name, claims in by_kind.items():
                leases = self._kinds[kind_name].leases
                extended = await leases.heartbeat(session, claims, lease_until=lease_until)
                held.update((kind_name, item_id, lease) for item_id, lease in extended)
        for kind_name, claims in by_kind.items():
            for item_id, lease in claims:
                key = (kind_name, item_id, lease)
                if key in held:
                    if key in self._deadline:
                        self._deadline[key] = lease_until
                elif self._deadline.pop(key, None) is not None:
                    log.warning("reconciler.lease_taken_over", kind=kind_name, id=item_id)
        return held
