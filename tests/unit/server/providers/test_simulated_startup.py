"""Replicas starting together on one new simulated-cloud file all start: switching the file to
WAL can be answered "locked" at once, without SQLite's busy handler (seen as a replica that
exited at start-up with `database is locked`)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path

from kupe.core.clock import SystemClock
from kupe.server.metrics import Metrics
from kupe.server.providers.simulated import SimulatedProvider, SimulatedTimings

PROCESSES = 8
ROUNDS = 5


def _open(state_file: str, barrier: Barrier) -> None:
    barrier.wait(timeout=30)
    SimulatedProvider(
        Path(state_file),
        clock=SystemClock(),
        metrics=Metrics(),
        cluster_domain="kupe.localhost",
        timings=SimulatedTimings(provision_seconds=1, upgrade_seconds=1, delete_seconds=1),
    )


def test_replicas_opening_a_new_cloud_file_at_once_all_start(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        state_file = tmp_path / f"cloud-{round_}.db"
        barrier = context.Barrier(PROCESSES)
        workers = [
            context.Process(target=_open, args=(str(state_file), barrier)) for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * PROCESSES
        with sqlite3.connect(state_file) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
