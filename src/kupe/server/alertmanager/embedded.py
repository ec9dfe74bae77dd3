"""The embedded backend: one Alertmanager (v0.28.1) that Kupe runs on 127.0.0.1 with
clustering off, in `<data dir>/alertmanager` (0700).

Each tenant's part of the configuration is a file of its own (`tenants/<id>.json`, written
only by whoever holds that tenant's lease); the configuration is assembled from all parts
under a lock and reloaded through `/-/reload`. A stale assembly can therefore never win: the
last one always reads every part as it is. The process starts on the first push (so only a
process that reconciles runs it) and stops with Kupe; one left behind by a killed Kupe is
stopped and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from kupe.server.alertmanager.backends import BackendError, TenantTarget
from kupe.server.alertmanager.checker import CheckerUnavailable, ConfigChecker
from kupe.server.alertmanager.installation import installation_config, tenant_part

_READY_SECONDS = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    """Write atomically, owner-only (the file holds tenants' credentials)."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


class EmbeddedAlertmanager:
    """Runs and configures the installation's Alertmanager."""

    name = "embedded"

    def __init__(
        self,
        binary: Path,
        directory: Path,
        *,
        port: int,
        timeout: float,
        checker: ConfigChecker | None = None,
    ) -> None:
        self.binary = binary
        # Each tenant's part is checked on its own before it joins the others: one tenant can
        # never make the installation's configuration invalid for everyone.
        self.checker = checker
        self.directory = directory
        self.port = port or _free_port()
        self.timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        # The configuration this process's Alertmanager last accepted.
        self._served: str | None = None
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.directory / "alertmanager.yml"

    async def start(self) -> None:
        """Run the Alertmanager on the configuration last assembled, if there is one (the
        tenants' parts are pushed again as their rows come due)."""
        if self.config_file.is_file():
            async with self._lock:
                await self._ensure_running()

    async def push(self, tenant: TenantTarget, config: dict[str, Any] | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        parts = self.directory / "tenants"
        parts.mkdir(exist_ok=True, mode=0o700)
        part = parts / f"{tenant.id}.json"
        if config is None:
            part.unlink(missing_ok=True)
        else:
            mine = tenant_part(tenant.name, config)
            await self._check_alone(tenant, mine)
            _write_private(part, json.dumps([tenant.name, mine]))
        async with self._lock:
            text = await asyncio.to_thread(self._assemble)
            running = self._process is not None and self._process.poll() is None
            if running and text == self._served:
                return  # a resync that changed nothing: no reload
            await self._ensure_running()
            await self._reload()
            self._served = text

    async def _check_alone(self, tenant: TenantTarget, part: dict[str, Any]) -> None:
        if self.checker is None:
            return
        try:
            problem = await self.checker.check(installation_config([(tenant.name, part)]))
        except CheckerUnavailable as exc:
            raise BackendError(str(exc)) from None
        if problem is not None:
            raise BackendError(
                f"the installation's Alertmanager refuses this tenant's part: {problem}",
                transient=False,
            )

    def _assemble(self) -> str:
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            parts: list[tuple[str, dict[str, Any]]] = []
            for path in sorted((self.directory / "tenants").glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    name, part = json.loads(path.read_text())
                    parts.append((name, part))
            text = yaml.safe_dump(installation_config(parts), sort_keys=False)
            _write_private(self.config_file, text)
            return text

    async def _ensure_running(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if not self.binary.is_file():
            raise BackendError(
                f"{self.binary} is not installed (kupe local install-alertmanager)",
                transient=False,
            )
        await asyncio.to_thread(self._spawn)
        await self._wait_ready()

    def _spawn(self) -> None:
        self._stop_leftover()
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = open(self.directory / "alertmanager.log", "ab")  # noqa: SIM115 - the child's
        os.chmod(self.directory / "alertmanager.log", 0o600)
        with log:
            self._process = subprocess.Popen(  # noqa: S603 - our own build, fixed arguments
                [
                    str(self.binary),
                    f"--config.file={self.config_file}",
                    f"--storage.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        (self.directory / "alertmanager.pid").write_text(str(self._process.pid))

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_SECONDS
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise BackendError(
                        f"Alertmanager exited at start (status {self._process.returncode}); "
                        f"see {self.directory / 'alertmanager.log'}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/-/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise BackendError(f"Alertmanager did not become ready on {self.url}")

    async def _reload(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(f"{self.url}/-/reload")
        except httpx.HTTPError as exc:
            raise BackendError(f"Alertmanager is unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            # Its message may quote the configuration; the log file has it.
            raise BackendError(
                f"Alertmanager refused the installation's configuration (status "
                f"{response.status_code}); see {self.directory / 'alertmanager.log'}"
            )

    def _stop_leftover(self) -> None:
        """Stop an Alertmanager a killed Kupe left running on this directory."""
        pid_file = self.directory / "alertmanager.pid"
        try:
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.config_file).encode() not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
