"""A real `kupe serve` on a loopback port, in a subprocess, for end-to-end tests of the CLI and
the sync SDK: fast simulated provider, its own data dir, the bootstrap key of tenant `default`."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

KUPE_BIN = Path(sys.executable).parent / "kupe"
KUBECTL_BIN = Path(sys.executable).parent / "kubectl"
FAST = {
    "KUPE_SIM_PROVISION_SECONDS": "1",
    "KUPE_SIM_UPGRADE_SECONDS": "1",
    "KUPE_SIM_DELETE_SECONDS": "1",
    "KUPE_RECONCILE_POLL_SECONDS": "0.2",
    "KUPE_LOG_FORMAT": "json",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environ(**extra: str | None) -> dict[str, str]:
    """os.environ without any KUPE_* or kubeconfig setting of the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUPE_") and k != "KUBECONFIG"}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass(frozen=True)
class LiveKupe:
    """A running server and what a client needs to reach it."""

    url: str
    key: str
    tenant: str
    data_dir: Path
    log_file: Path

    def client_env(self, home: Path, **extra: str | None) -> dict[str, str]:
        """Environment for a client process: this server, and a private config/kube dir."""
        return clean_environ(
            KUPE_API_URL=self.url,
            KUPE_API_KEY=self.key,
            KUPE_TENANT=self.tenant,
            XDG_CONFIG_HOME=str(home / "xdg"),
            HOME=str(home),
            PATH=f"{KUPE_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **extra,
        )

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def live_kupe(workdir: Path, settings: Mapping[str, str] | None = None) -> Iterator[LiveKupe]:
    """Start `kupe serve`, wait until it is ready, yield it, and always stop it."""
    port = free_port()
    data_dir = workdir / "data"
    log_file = workdir / "server.log"
    env = clean_environ(
        KUPE_HOST="127.0.0.1",
        KUPE_PORT=str(port),
        KUPE_DATA_DIR=str(data_dir),
        **FAST,
        **dict(settings or {}),
    )
    url = f"http://127.0.0.1:{port}"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(KUPE_BIN), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(process, url, data_dir / "bootstrap-api-key", log_file)
            key = (data_dir / "bootstrap-api-key").read_text().strip()
            yield LiveKupe(url, key, "default", data_dir, log_file)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_ready(process: subprocess.Popen[bytes], url: str, key_file: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kupe serve exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200 and key_file.exists():
                return
        time.sleep(0.1)
    raise RuntimeError(f"kupe serve did not become ready:\n{log.read_text()}")
