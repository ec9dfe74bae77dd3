"""The simulated provider: a durable stand-in for a cloud, with configurable timings and faults.

Its "infrastructure" lives in a SQLite file of its own (not Kupe's database, see `store`):
every process that points at the same file sees one cloud, a restart forgets nothing, and a
repeated call never creates a cluster twice. Mutations run under `BEGIN IMMEDIATE`, so
concurrent callers in several processes are serialised by the file lock; within a process one
thread does all the file work.

Every real mutation is also appended to the cloud's own ledger (`operations`), in the same
transaction, naming the process that made it: the cloud's bill, which survives `kill -9` of the
process whose in-memory metrics counted it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from kupe.core.clock import Clock
from kupe.core.sqlite_wal import enable_wal
from kupe.server.metrics import Metrics
from kupe.server.providers.base import (
    ClusterSpec,
    InfraPhase,
    InfraState,
    PermanentProviderError,
    Provider,
    SecretCopy,
    TransientProviderError,
)
from kupe.server.providers.pki import ClusterPki, issue_cluster_pki
from kupe.server.providers.simulated import secrets
from kupe.server.providers.simulated.store import (
    COLUMNS,
    Row,
    create_schema,
    default_actor,
    state_of,
    transition_due,
    write_transaction,
)

T = TypeVar("T")


@dataclass
class _Txn:
    """One transaction on the cloud's file and the mutations it made (counted on commit)."""

    conn: sqlite3.Connection
    operations: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SimulatedTimings:
    provision_seconds: float = 8.0
    upgrade_seconds: float = 5.0
    delete_seconds: float = 3.0
    migrate_seconds: float = 5.0
    failure_rate: float = 0.0
    fail_pattern: str = ""


class SimulatedProvider(Provider):
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
        actor: str | None = None,
    ) -> None:
        self.state_file = state_file
        self.clock = clock
        self.metrics = metrics
        self.cluster_domain = cluster_domain
        self.timings = timings
        self.actor = actor or default_actor()
        self._fail = re.compile(timings.fail_pattern) if timings.fail_pattern else None
        rng = rng or random.Random()  # noqa: S311 - fault injection, not security
        self._fault_salt = rng.getrandbits(64)
        self._calls: dict[str, int] = {}
        # One thread owns the file in this process: callers queue here instead of spinning in
        # SQLite's busy handler against each other; the lock is then contended only by others.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kupe-sim")
        self._conn: sqlite3.Connection | None = None
        state_file.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            enable_wal(conn)  # replicas may be starting on the same file right now
            create_schema(conn)
        finally:
            conn.close()

    # -- the Provider protocol -------------------------------------------------------------

    async def observe(self, cluster_id: str) -> InfraState | None:
        self._maybe_fail(cluster_id)
        # A write transaction: reading folds in finished transitions, as a cloud's clock would.
        return await self._run(lambda txn: self._settled(txn.conn, cluster_id))

    async def observe_many(self, cluster_ids: Sequence[str]) -> dict[str, InfraState | None]:
        """One read of the cloud's file for all of them. With fault injection on, the call
        fails as a whole when any of the clusters draws a failure, as one API call would."""
        for cluster_id in cluster_ids:
            self._maybe_fail(cluster_id)
        ids = list(cluster_ids)

        def read(conn: sqlite3.Connection) -> tuple[dict[str, InfraState | None], list[str]]:
            now = self._now()
            states: dict[str, InfraState | None] = dict.fromkeys(ids)
            due: list[str] = []
            # One statement reads one snapshot; the ids travel as one JSON parameter, however
            # many there are.
            query = (
                f"SELECT {COLUMNS} FROM infra "  # noqa: S608 - constant columns
                "WHERE id IN (SELECT value FROM json_each(?))"
            )
            for found in conn.execute(query, (json.dumps(ids),)):
                row = Row._make(found)
                if transition_due(row, now):
                    due.append(row.id)
                else:
                    states[row.id] = state_of(row, now)
            return states, due

        # Settled clusters only need reading; the few whose transition has come are folded in
        # as `observe` does, under the write lock.
        states, due = await self._on_file(read)
        if due:
            states.update(await self._run(lambda txn: {i: self._settled(txn.conn, i) for i in due}))
        return states

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        self._maybe_fail(spec.id)
        if self._fail and self._fail.search(spec.name):
            raise PermanentProviderError(
                f"simulated permanent failure: cluster name matches {self.timings.fail_pattern!r}"
            )
        # Certificates are made outside the lock; they are thrown away if the cluster exists.
        endpoint_host = f"{spec.name}.{spec.tenant}.{self.cluster_domain}"
        pki = issue_cluster_pki(f"{spec.tenant}/{spec.name}", endpoint_host, self.clock.now())

        def apply(txn: _Txn) -> InfraState:
            state = self._settled(txn.conn, spec.id)
            if state is None:
                self._create(txn, spec, f"https://{endpoint_host}", pki)
            elif state.phase is InfraPhase.DELETING:
                raise TransientProviderError("cluster is being deleted")
            elif state.phase in (InfraPhase.READY, InfraPhase.UNHEALTHY, InfraPhase.CREATING):
                self._converge(txn, state, spec)
            settled = self._settled(txn.conn, spec.id)
            assert settled is not None
            return settled

        return await self._run(apply)

    async def delete(self, cluster_id: str) -> InfraState | None:
        self._maybe_fail(cluster_id)

        def apply(txn: _Txn) -> InfraState | None:
            state = self._settled(txn.conn, cluster_id)
            if state is None or state.phase is InfraPhase.DELETING:
                return state
            txn.conn.execute(
                "UPDATE infra SET deleting_done_at=? WHERE id=?",
                (self._now() + self.timings.delete_seconds, cluster_id),
            )
            self._record(txn, cluster_id, "delete")
            return self._settled(txn.conn, cluster_id)

        return await self._run(apply)

    def _create(self, txn: _Txn, spec: ClusterSpec, endpoint: str, pki: ClusterPki) -> None:
        txn.conn.execute(
            "INSERT INTO infra (id, tenant, name, type, version, endpoint, ca_certificate, "
            "serving_certificate, cpu_millis, memory_bytes, storage_bytes, ready_at, alerts, "
            "high_availability) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                spec.id,
                spec.tenant,
                spec.name,
                spec.type,
                spec.version,
                endpoint,
                pki.ca_certificate_pem,
                pki.serving_certificate_pem,
                spec.cpu_millis,
                spec.memory_bytes,
                spec.storage_bytes,
                self._now() + self.timings.provision_seconds,
                spec.alerts,
                int(spec.high_availability),
            ),
        )
        self._record(txn, spec.id, "create")

    def _converge(self, txn: _Txn, state: InfraState, spec: ClusterSpec) -> None:
        """Move an existing cluster towards `spec`: resize and alerts at once, a version
        change as an upgrade, high availability as a migration (once it is up)."""
        conn, now = txn.conn, self._now()
        changes: list[tuple[str, tuple[object, ...]]] = []
        wanted = (spec.cpu_millis, spec.memory_bytes, spec.storage_bytes)
        if (state.cpu_millis, state.memory_bytes, state.storage_bytes) != wanted:
            changes.append(("cpu_millis=?, memory_bytes=?, storage_bytes=?", wanted))
        if state.alerts != spec.alerts:
            changes.append(("alerts=?", (spec.alerts,)))
        if state.version != spec.version:
            if state.phase is InfraPhase.CREATING:
                changes.append(("version=?", (spec.version,)))
            else:
                done = now + self.timings.upgrade_seconds
                changes.append(("upgrade_target=?, upgrade_done_at=?", (spec.version, done)))
        if spec.high_availability and not state.high_availability:
            if state.phase is InfraPhase.CREATING:
                changes.append(("high_availability=1", ()))
            else:
                done = now + self.timings.migrate_seconds
                changes.append(("migration_done_at=?", (done,)))
        for assignment, values in changes:
            conn.execute(f"UPDATE infra SET {assignment} WHERE id=?", (*values, spec.id))  # noqa: S608
        if changes:
            self._record(txn, spec.id, "update")

    # -- the SecretSync capability ---------------------------------------------------------

    async def read_secret(self, cluster_id: str, namespace: str, name: str) -> SecretCopy | None:
        self._maybe_fail(cluster_id)
        return await self._on_file(lambda conn: secrets.read(conn, cluster_id, namespace, name))

    async def write_secret(self, cluster_id: str, secret: SecretCopy) -> None:
        """Every call is a write the cluster's API would see, and is in the ledger (so a
        duplicate from a second replica shows)."""
        self._maybe_fail(cluster_id)

        def apply(txn: _Txn) -> None:
            state = self._settled(txn.conn, cluster_id)
            if state is None or state.phase in (InfraPhase.CREATING, InfraPhase.DELETING):
                raise TransientProviderError("the cluster is not serving")
            secrets.store(txn.conn, cluster_id, secret, managed=True)
            self._record(txn, cluster_id, "secret-write")

        await self._run(apply)

    async def delete_secret(self, cluster_id: str, namespace: str, name: str) -> None:
        self._maybe_fail(cluster_id)

        def apply(txn: _Txn) -> None:
            if secrets.delete_managed(txn.conn, cluster_id, namespace, name):
                self._record(txn, cluster_id, "secret-delete")

        await self._run(apply)

    # -- the other capabilities --------------------------------------------------------------

    def supports_high_availability(self) -> bool:
        return True

    def accepts_kupe_tokens(self) -> bool:
        return True

    # -- test and operator hooks -----------------------------------------------------------

    async def set_healthy(self, cluster_id: str, healthy: bool) -> None:
        """Make a cluster report unhealthy (or healthy again), as a real outage would."""
        await self._run(
            lambda txn: txn.conn.execute(
                "UPDATE infra SET healthy=? WHERE id=?", (int(healthy), cluster_id)
            )
        )

    async def put_unmanaged_secret(self, cluster_id: str, secret: SecretCopy) -> None:
        """A Secret someone else made in the cluster, which Kupe must leave alone."""
        await self._run(lambda txn: secrets.store(txn.conn, cluster_id, secret, managed=False))

    async def count(self) -> int:
        """How many clusters exist in the simulated cloud."""
        return await self._run(
            lambda txn: int(txn.conn.execute("SELECT count(*) FROM infra").fetchone()[0])
        )

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Release the file and the worker thread."""
        self._executor.submit(self._close_connection).result()
        self._executor.shutdown(wait=True)

    # -- internals ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _record(self, txn: _Txn, cluster_id: str, operation: str) -> None:
        txn.conn.execute(
            "INSERT INTO operations (cluster_id, operation, actor, at) VALUES (?,?,?,?)",
            (cluster_id, operation, self.actor, self._now()),
        )
        txn.operations.append((cluster_id, operation))

    def _maybe_fail(self, cluster_id: str) -> None:
        """Fail the call transiently with probability `failure_rate`. Each cluster draws from
        a stream of its own, so how concurrent calls happen to interleave never decides which
        cluster gets an unlucky run of failures."""
        rate = self.timings.failure_rate
        if not rate:
            return
        call = self._calls[cluster_id] = self._calls.get(cluster_id, 0) + 1
        draw = random.Random(f"{self._fault_salt}:{cluster_id}:{call}").random()  # noqa: S311
        if draw < rate:
            raise TransientProviderError("simulated transient provider failure")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.state_file, timeout=30, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout=30000")
        # WAL + NORMAL survives a killed process (not a power cut), which is what a sim needs.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, work: Callable[[_Txn], T]) -> T:
        """Do `work` in one write transaction on the cloud's file."""

        def call(conn: sqlite3.Connection) -> T:
            txn = _Txn(conn)
            with write_transaction(conn):
                result = work(txn)
            # Counted once committed, and here rather than in the caller, which may be
            # cancelled meanwhile: the metric and the ledger always agree.
            for _cluster_id, operation in txn.operations:
                self.metrics.provider_operations.labels(self.name, operation).inc()
            return result

        return await self._on_file(call)

    async def _on_file(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` with the cloud's file on the one thread that owns it (outside a
        transaction, so a single statement reads one snapshot)."""

        def call() -> T:
            if self._conn is None:
                self._conn = self._connect()
            return work(self._conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.OperationalError as exc:
            raise TransientProviderError(f"simulated cloud unavailable: {exc}") from exc

    def _settled(self, conn: sqlite3.Connection, cluster_id: str) -> InfraState | None:
        """Read one cluster, first folding in the transitions whose time has come."""
        query = f"SELECT {COLUMNS} FROM infra WHERE id=?"  # noqa: S608 - constant columns
        found = conn.execute(query, (cluster_id,)).fetchone()
        if found is None:
            return None
        row, now = Row._make(found), self._now()
        if transition_due(row, now):
            if row.deleting_done_at is not None:
                conn.execute("DELETE FROM infra WHERE id=?", (cluster_id,))
                conn.execute("DELETE FROM secrets WHERE cluster_id=?", (cluster_id,))
                return None
            if row.upgrade_done_at is not None and now >= row.upgrade_done_at:
                assert row.upgrade_target is not None
                conn.execute(
                    "UPDATE infra SET version=?, upgrade_target=NULL, upgrade_done_at=NULL "
                    "WHERE id=?",
                    (row.upgrade_target, cluster_id),
                )
                row = row._replace(
                    version=row.upgrade_target, upgrade_target=None, upgrade_done_at=None
                )
            if row.migration_done_at is not None and now >= row.migration_done_at:
                conn.execute(
                    "UPDATE infra SET high_availability=1, migration_done_at=NULL WHERE id=?",
                    (cluster_id,),
                )
                row = row._replace(high_availability=1, migration_done_at=None)
        return state_of(row, now)
