"""enable_wal waits out a "locked" answer instead of failing at once."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from kupe.core.sqlite_wal import WAL_PATIENCE_SECONDS, enable_wal


def _locked_for_a_while(path: Path, seconds: float) -> threading.Timer:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(seconds, lambda: (holder.execute("COMMIT"), holder.close()))
    release.start()
    return release


def test_the_switch_to_wal_is_retried_until_the_lock_is_free(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    release = _locked_for_a_while(path, 0.5)
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)  # no busy handler at all
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        conn.execute("PRAGMA journal_mode=WAL")
    enable_wal(conn)
    release.join()
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_an_error_time_cannot_mend_is_raised_at_once(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    with sqlite3.connect(path) as made:
        made.execute("CREATE TABLE t (x)")
    made.close()
    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        enable_wal(readonly)
    assert time.monotonic() - started < WAL_PATIENCE_SECONDS / 2
    readonly.close()
