"""Switching a SQLite file to WAL while other processes open it too.

The switch needs an exclusive lock, and SQLite may answer "database is locked" at once, without
calling its busy handler, when another connection is switching or opening the same new file (two
replicas starting together). The mode is stored in the file, so once any process has switched
it the statement is a no-op: retrying for a bounded time is enough.
"""

from __future__ import annotations

import sqlite3
import time

WAL_PATIENCE_SECONDS = 10.0
_RETRY_SECONDS = 0.05


def enable_wal(cursor: sqlite3.Cursor | sqlite3.Connection) -> None:
    """Put the file in WAL mode, retrying "locked" answers for up to WAL_PATIENCE_SECONDS."""
    deadline = time.monotonic() + WAL_PATIENCE_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_SECONDS)
