"""The data directory holds key hashes, member emails and cached responses: owner-only."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from kupe.server.providers.registry import provider_files
from kupe.server.settings import Settings

PRIVATE_UMASK = 0o077
# What SQLite keeps beside a database file; the write lock is Kupe's own (db/engine.py).
_SIDE_FILES = ("", "-wal", "-shm", "-journal", ".write-lock")


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.effective_database_url)
    if not url.get_backend_name().startswith("sqlite") or not url.database:
        return None
    return Path(url.database)


def kupe_files(settings: Settings) -> Iterator[Path]:
    """Every file Kupe keeps: all of the data dir (the bootstrap key, the embedded database,
    providers' state such as the simulated cloud or local clusters' PKI), and the SQLite
    database with its side files wherever it is."""
    for root, dirs, files in os.walk(settings.data_dir):
        for name in (*dirs, *files):
            yield Path(root, name)
    database = _sqlite_file(settings)
    if database is not None:
        for suffix in _SIDE_FILES:
            yield database.with_name(database.name + suffix)
    yield from provider_files(settings.provider, settings.provider_section, settings.data_dir)


def _tighten(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not stat.S_ISLNK(path.lstat().st_mode) and mode & 0o077:
            os.chmod(path, mode & ~0o077)


def secure_data_dir(settings: Settings) -> None:
    """Owner-only from here on: umask 077 for everything this process creates (the data dir
    0700, its files 0600), and what already exists tightened the same way."""
    os.umask(PRIVATE_UMASK)
    _tighten(settings.data_dir)
    for path in kupe_files(settings):
        _tighten(path)
