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
        except sqlite3.OperationalError as exc:
            # Only "locked"/"busy" pass with time; anything else (a file that is not a
            # database, a read-only directory) is answered at once.
            if not _contended(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(_RETRY_SECONDS)


def _contended(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message
