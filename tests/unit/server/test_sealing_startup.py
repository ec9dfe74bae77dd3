"""Replicas starting together on one data directory all get the same server key (seen in CI: a
replica read the key file another had created but not yet written, and exited)."""

from __future__ import annotations

import multiprocessing
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from kupe.server.sealing import load_or_create_key

PROCESSES = 8
ROUNDS = 10


def _load(data_dir: str, barrier: Barrier, keys: Queue[bytes]) -> None:
    barrier.wait(timeout=30)
    keys.put(load_or_create_key(Path(data_dir)))


def test_replicas_making_the_key_at_once_all_start_with_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        data_dir = tmp_path / f"data-{round_}"
        barrier = context.Barrier(PROCESSES)
        keys: Queue[bytes] = context.Queue()
        workers = [
            context.Process(target=_load, args=(str(data_dir), barrier, keys))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        made = [keys.get(timeout=20) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
        assert [worker.exitcode for worker in workers] == [0] * PROCESSES
        assert len(set(made)) == 1
        assert load_or_create_key(data_dir) == made[0]
        assert sorted(path.name for path in data_dir.iterdir()) == ["server.key"]
