"""The simulated cloud's file: its schema, its rows and what a row says about a cluster.

One SQLite file (not Kupe's database) holds the "infrastructure" (`infra`), the Secrets synced
into clusters (`secrets`) and the ledger of every real mutation (`operations`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kupe.core.versions import patch_version
from kupe.server.providers.base import InfraPhase, InfraState

SCHEMA = (
    """
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
    """,
    """
    CREATE TABLE IF NOT EXISTS operations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        cluster_id TEXT NOT NULL,
        operation TEXT NOT NULL,
        actor TEXT NOT NULL,
        at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS secrets (
        cluster_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        PRIMARY KEY (cluster_id, namespace, name)
    )
    """,
)
# Columns added since the first version of the file: added to older files on open.
ADDED_COLUMNS = {
    "alerts": "TEXT NOT NULL DEFAULT ''",
    "high_availability": "INTEGER NOT NULL DEFAULT 0",
    "migration_done_at": "REAL",
}
COLUMNS = (
    "id, version, endpoint, ca_certificate, cpu_millis, memory_bytes, storage_bytes, "
    "ready_at, upgrade_target, upgrade_done_at, deleting_done_at, healthy, alerts, "
    "high_availability, migration_done_at"
)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (BEGIN IMMEDIATE: the file's write lock, waited for by SQLite's
    busy handler), committed when the block ends normally, rolled back otherwise."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the file's tables, and add the columns an older file lacks: in one write
    transaction, so processes starting together do not both add a column."""
    with write_transaction(conn):
        for statement in SCHEMA:
            conn.execute(statement)
        have = {row[1] for row in conn.execute("PRAGMA table_info(infra)")}
        for column, definition in ADDED_COLUMNS.items():
            if column not in have:
                conn.execute(f"ALTER TABLE infra ADD COLUMN {column} {definition}")


@dataclass(frozen=True)
class LedgerEntry:
    """One real mutation of the simulated cloud, as its ledger recorded it."""

    seq: int
    cluster_id: str
    operation: str
    actor: str
    at: float


def _read(state_file: Path, query: str) -> list[tuple[object, ...]]:
    if not state_file.exists():
        return []
    conn = sqlite3.connect(state_file, timeout=30)
    try:
        create_schema(conn)
        return conn.execute(query).fetchall()
    finally:
        conn.close()


def read_ledger(state_file: Path) -> list[LedgerEntry]:
    """Every mutation the simulated cloud in `state_file` has recorded, oldest first."""
    rows = _read(
        state_file, "SELECT seq, cluster_id, operation, actor, at FROM operations ORDER BY seq"
    )
    return [LedgerEntry(*row) for row in rows]  # type: ignore[arg-type]


def read_inventory(state_file: Path) -> dict[str, str]:
    """The clusters that exist in the simulated cloud in `state_file` (being deleted or not):
    id -> "tenant/name"."""
    rows = _read(state_file, "SELECT id, tenant, name FROM infra")
    return {str(row[0]): f"{row[1]}/{row[2]}" for row in rows}


def default_actor() -> str:
    """Names this process in the ledger: host, pid and a nonce (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Row(NamedTuple):
    """A row of `infra` as COLUMNS selects it."""

    id: str
    version: str
    endpoint: str
    ca_certificate: str
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int
    ready_at: float
    upgrade_target: str | None
    upgrade_done_at: float | None
    deleting_done_at: float | None
    healthy: int
    alerts: str
    high_availability: int
    migration_done_at: float | None


def transition_due(row: Row, now: float) -> bool:
    """Whether a teardown, an upgrade or a migration to HA has finished but is not yet folded
    into the row."""
    if row.deleting_done_at is not None:
        return now >= row.deleting_done_at
    if now < row.ready_at:
        return False
    upgraded = row.upgrade_done_at is not None and now >= row.upgrade_done_at
    migrated = row.migration_done_at is not None and now >= row.migration_done_at
    return upgraded or migrated


def state_of(row: Row, now: float) -> InfraState:
    """What a row with no transition due says about its cluster."""
    migrating = row.migration_done_at is not None
    if row.deleting_done_at is not None:
        phase = InfraPhase.DELETING
    elif now < row.ready_at:
        phase = InfraPhase.CREATING
    elif row.upgrade_target is not None:
        phase = InfraPhase.UPDATING
    elif migrating:
        phase = InfraPhase.MIGRATING
    else:
        phase = InfraPhase.READY if row.healthy else InfraPhase.UNHEALTHY
    replicas = 3 if row.high_availability or migrating else 1
    ready = 3 if row.high_availability else (1 if now >= row.ready_at else 0)
    if not row.healthy:
        ready = max(0, ready - 1) if row.high_availability else 0
    return InfraState(
        id=row.id,
        phase=phase,
        version=row.version,
        kubernetes_version=patch_version(row.version),
        endpoint=row.endpoint,
        ca_certificate=row.ca_certificate,
        cpu_millis=row.cpu_millis,
        memory_bytes=row.memory_bytes,
        storage_bytes=row.storage_bytes,
        alerts=row.alerts,
        high_availability=bool(row.high_availability),
        control_plane_replicas_ready=ready,
        control_plane_replicas_desired=replicas,
    )
