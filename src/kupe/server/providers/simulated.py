"""The simulated provider: a durable stand-in for a cloud, with configurable timings and faults.

Its "infrastructure" lives in a SQLite file of its own (not Kupe's database): every process
that points at the same file sees one cloud, a restart forgets nothing, and a repeated call never
creates a cluster twice. Mutations run under `BEGIN IMMEDIATE`, so concurrent callers in several
processes are serialised by the file lock.
"""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from kupe.core.clock import Clock
from kupe.core.versions import patch_version
from kupe.server.metrics import Metrics
from kupe.server.providers.base import (
    ClusterSpec,
    InfraPhase,
    InfraState,
    PermanentProviderError,
    TransientProviderError,
)
from kupe.server.providers.pki import issue_cluster_pki

_SCHEMA = """
CREATE TABLE IF NOT EXISTS infra (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    version TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    ca_certificate TEXT NOT NULL,
    serving_certificate TEXT NOT NULL,
    cpu_millis INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    storage_bytes INTEGER NOT NULL,
    ready_at REAL NOT NULL,
    upgrade_target TEXT,
    upgrade_done_at REAL,
    deleting_done_at REAL,
    healthy INTEGER NOT NULL DEFAULT 1
)
"""
_COLUMNS = (
    "id, version, endpoint, ca_certificate, cpu_millis, memory_bytes, storage_bytes, "
    "ready_at, upgrade_target, upgrade_done_at, deleting_done_at, healthy"
)
T = TypeVar("T")


@dataclass(frozen=True)
class SimulatedTimings:
    provision_seconds: float = 8.0
    upgrade_seconds: float = 5.0
    delete_seconds: float = 3.0
    failure_rate: float = 0.0
    fail_pattern: str = ""


class SimulatedProvider:
    """A provider whose clusters are rows in a local file; see the module docstring."""

    name = "simulated"

    def __init__(
        self,
        state_file: Path,
        *,
        clock: Clock,
        metrics: Metrics,
        cluster_domain: str,
        timings: SimulatedTimings,
        rng: random.Random | None = None,
    ) -> None:
        self.state_file = state_file
        self.clock = clock
        self.metrics = metrics
        self.cluster_domain = cluster_domain
        self.timings = timings
        self._fail = re.compile(timings.fail_pattern) if timings.fail_pattern else None
        self._rng = rng or random.Random()  # noqa: S311 - fault injection, not security
        state_file.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    # -- the Provider protocol -------------------------------------------------------------

    async def observe(self, cluster_id: str) -> InfraState | None:
        self._maybe_fail()
        # A write transaction: reading folds in finished transitions, as a cloud's clock would.
        return await self._run(lambda conn: self._settled(conn, cluster_id))

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        self._maybe_fail()
        if self._fail and self._fail.search(spec.name):
            raise PermanentProviderError(
                f"simulated permanent failure: cluster name matches {self.timings.fail_pattern!r}"
            )
        # Certificates are made outside the lock; they are thrown away if the cluster exists.
        endpoint_host = f"{spec.name}.{spec.tenant}.{self.cluster_domain}"
        pki = issue_cluster_pki(f"{spec.tenant}/{spec.name}", endpoint_host, self.clock.now())

        def apply(conn: sqlite3.Connection) -> InfraState:
            now = self._now()
            state = self._settled(conn, spec.id)
            if state is None:
                conn.execute(
                    "INSERT INTO infra (id, tenant, name, type, version, endpoint, "
                    "ca_certificate, serving_certificate, cpu_millis, memory_bytes, "
                    "storage_bytes, ready_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        spec.id,
                        spec.tenant,
                        spec.name,
                        spec.type,
                        spec.version,
                        f"https://{endpoint_host}",
                        pki.ca_certificate_pem,
                        pki.serving_certificate_pem,
                        spec.cpu_millis,
                        spec.memory_bytes,
                        spec.storage_bytes,
                        now + self.timings.provision_seconds,
                    ),
                )
                self._count("create")
            elif state.phase is InfraPhase.DELETING:
                raise TransientProviderError("cluster is being deleted")
            elif state.phase in (InfraPhase.READY, InfraPhase.UNHEALTHY, InfraPhase.CREATING):
                if (state.cpu_millis, state.memory_bytes, state.storage_bytes) != (
                    spec.cpu_millis,
                    spec.memory_bytes,
                    spec.storage_bytes,
                ):
                    conn.execute(
                        "UPDATE infra SET cpu_millis=?, memory_bytes=?, storage_bytes=? WHERE id=?",
                        (spec.cpu_millis, spec.memory_bytes, spec.storage_bytes, spec.id),
                    )
                    self._count("update")
                if state.version != spec.version:
                    if state.phase is InfraPhase.CREATING:
                        conn.execute(
                            "UPDATE infra SET version=? WHERE id=?", (spec.version, spec.id)
                        )
                    else:
                        conn.execute(
                            "UPDATE infra SET upgrade_target=?, upgrade_done_at=? WHERE id=?",
                            (spec.version, now + self.timings.upgrade_seconds, spec.id),
                        )
                    self._count("update")
            settled = self._settled(conn, spec.id)
            assert settled is not None
            return settled

        return await self._run(apply)

    async def delete(self, cluster_id: str) -> InfraState | None:
        self._maybe_fail()

        def apply(conn: sqlite3.Connection) -> InfraState | None:
            state = self._settled(conn, cluster_id)
            if state is None or state.phase is InfraPhase.DELETING:
                return state
            conn.execute(
                "UPDATE infra SET deleting_done_at=? WHERE id=?",
                (self._now() + self.timings.delete_seconds, cluster_id),
            )
            self._count("delete")
            return self._settled(conn, cluster_id)

        return await self._run(apply)

    # -- test and operator hooks -----------------------------------------------------------

    async def set_healthy(self, cluster_id: str, healthy: bool) -> None:
        """Make a cluster report unhealthy (or healthy again), as a real outage would."""
        await self._run(
            lambda conn: conn.execute(
                "UPDATE infra SET healthy=? WHERE id=?", (int(healthy), cluster_id)
            )
        )

    async def count(self) -> int:
        """How many clusters exist in the simulated cloud."""
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM infra").fetchone()[0])
        )

    # -- internals ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _count(self, operation: str) -> None:
        self.metrics.provider_operations.labels(self.name, operation).inc()

    def _maybe_fail(self) -> None:
        rate = self.timings.failure_rate
        if rate and self._rng.random() < rate:
            raise TransientProviderError("simulated transient provider failure")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.state_file, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(call)
        except sqlite3.OperationalError as exc:
            raise TransientProviderError(f"simulated cloud unavailable: {exc}") from exc

    def _settled(self, conn: sqlite3.Connection, cluster_id: str) -> InfraState | None:
        """Read one cluster, first folding in the transitions whose time has come."""
        query = f"SELECT {_COLUMNS} FROM infra WHERE id=?"  # noqa: S608 - constant columns
        row = conn.execute(query, (cluster_id,)).fetchone()
        if row is None:
            return None
        (
            _id,
            version,
            endpoint,
            ca,
            cpu,
            mem,
            sto,
            ready_at,
            target,
            upgrade_done_at,
            deleting_done_at,
            healthy,
        ) = row
        now = self._now()
        if deleting_done_at is not None:
            if now >= deleting_done_at:
                conn.execute("DELETE FROM infra WHERE id=?", (cluster_id,))
                return None
            phase = InfraPhase.DELETING
        elif now < ready_at:
            phase = InfraPhase.CREATING
        elif target is not None and now < upgrade_done_at:
            phase = InfraPhase.UPDATING
        else:
            if target is not None:
                version = target
                conn.execute(
                    "UPDATE infra SET version=?, upgrade_target=NULL, upgrade_done_at=NULL "
                    "WHERE id=?",
                    (target, cluster_id),
                )
            phase = InfraPhase.READY if healthy else InfraPhase.UNHEALTHY
        return InfraState(
            id=cluster_id,
            phase=phase,
            version=version,
            kubernetes_version=patch_version(version),
            endpoint=endpoint,
            ca_certificate=ca,
            cpu_millis=cpu,
            memory_bytes=mem,
            storage_bytes=sto,
        )
