"""Real `kupe serve` / `kupe reconciler` processes for crash, outage and replica tests.

A ``ProcessGroup`` starts processes on free loopback ports with an environment of their own,
waits for them with bounded polling, kills them with SIGKILL or stops them with SIGTERM,
restarts them, and scrapes their /metrics. Leaving the group kills whatever is still running,
also when the test failed, so no process outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kupe.server.providers.simulated import LedgerEntry, read_ledger
from tests.support import http

_T = TypeVar("_T")
KUPE = [sys.executable, "-c", "from kupe.cli.main import main; main()"]
# Fast, test-sized timings: short leases so a killed process's work is taken over quickly.
FAST_ENV = {
    "KUPE_SIM_PROVISION_SECONDS": "2",
    "KUPE_SIM_UPGRADE_SECONDS": "1",
    "KUPE_SIM_DELETE_SECONDS": "2",
    "KUPE_RECONCILE_POLL_SECONDS": "0.5",
    "KUPE_LEASE_SECONDS": "3",
    "KUPE_RETRY_BASE_SECONDS": "0.5",
    "KUPE_RETRY_MAX_SECONDS": "2",
    "KUPE_LOG_FORMAT": "json",
    "KUPE_RATE_LIMIT_RPS": "100000",
    "KUPE_RATE_LIMIT_BURST": "100000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    """os.environ without the caller's KUPE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUPE_")}
    env.update(extra)
    return env


def wait_for(
    what: str, probe: Callable[[], _T | None], *, timeout: float = 60.0, every: float = 0.2
) -> _T:
    """Poll `probe` until it returns something other than None (or False); bounded."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}") from (
                last_error
            )
        time.sleep(every)


class KupeProcess:
    """One `kupe` server-side process: started, killed and restarted by its group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_file = log_file
        self.port = int(env["KUPE_RECONCILER_PORT" if command[0] == "reconciler" else "KUPE_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every incarnation, oldest first

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> KupeProcess:
        assert not self.alive, f"{self.name} is already running"
        with self.log_file.open("ab") as log:
            log.write(f"\n=== starting {self.name}: kupe {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*KUPE, *self.command], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.pids.append(self.process.pid)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> KupeProcess:
        """Wait until /healthz answers (and the lifespan, with its migrations, is done)."""

        def probe() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            return http.get(f"{self.url}/healthz", timeout=5).status_code == 200

        wait_for(f"{self.name} /healthz", probe, timeout=timeout, every=0.1)
        return self

    def wait_ready(self, timeout: float = 60.0) -> KupeProcess:
        def probe() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            return http.get(f"{self.url}/readyz", timeout=5).status_code == 200

        wait_for(f"{self.name} /readyz", probe, timeout=timeout, every=0.1)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine or container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait for a clean exit (SIGKILL if it takes too long)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def restart(self) -> KupeProcess:
        self.kill()
        return self.start()

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics, keyed by (name, labels)."""
        text = http.get(f"{self.url}/metrics", timeout=10).text
        samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when absent)."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.metrics().items()
            if sample == name and wanted <= sample_labels
        )

    def provider_operations(self, operation: str) -> int:
        return int(self.metric("kupe_provider_operations_total", operation=operation))

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Processes of one test sharing a work directory; all are killed when the group closes."""

    def __init__(self, workdir: Path, base_env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.cloud = workdir / "simulated-cloud.db"
        self.base_env = {
            **FAST_ENV,
            "KUPE_HOST": "127.0.0.1",
            "KUPE_DATA_DIR": str(self.data_dir),
            "KUPE_SIM_STATE_FILE": str(self.cloud),
            **dict(base_env or {}),
        }
        self.processes: list[KupeProcess] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(Exception):
                process.kill()

    def serve(self, name: str = "serve", **env: str) -> KupeProcess:
        """Start `kupe serve` (API, plus the reconciler unless KUPE_RECONCILER=off)."""
        return self._spawn(name, ["serve"], {"KUPE_PORT": str(free_port()), **env})

    def reconciler(self, name: str = "reconciler", **env: str) -> KupeProcess:
        """Start `kupe reconciler` with its probes and metrics on a port of its own."""
        return self._spawn(name, ["reconciler"], {"KUPE_RECONCILER_PORT": str(free_port()), **env})

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> KupeProcess:
        log_file = self.workdir / f"{name}.log"
        process = KupeProcess(name, command, clean_environ({**self.base_env, **env}), log_file)
        self.processes.append(process)
        return process.start()

    def api_key(self, timeout: float = 60.0) -> str:
        """The bootstrap admin key of tenant `default` (written by the first `kupe serve`)."""
        key_file = self.data_dir / "bootstrap-api-key"
        return wait_for(
            "the bootstrap API key",
            lambda: key_file.read_text().strip() if key_file.exists() else None,
            timeout=timeout,
        )

    def ledger(self) -> list[LedgerEntry]:
        """The simulated cloud's record of every real mutation, from every process."""
        return read_ledger(self.cloud)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail()}" for p in self.processes)


class Api:
    """A few cluster calls against a live server, as tenant `tenant`, for real-process tests."""

    def __init__(self, url: str, key: str, tenant: str = "default") -> None:
        self.url = url
        self.tenant = tenant
        self.client = http.client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def clusters_url(self, name: str = "") -> str:
        return f"/api/v1/tenants/{self.tenant}/clusters" + (f"/{name}" if name else "")

    def create(self, name: str) -> httpx.Response:
        body = {"name": name, "displayName": name, "type": "shared"}
        return self.client.post(self.clusters_url(), json=body)

    def delete(self, name: str) -> httpx.Response:
        return self.client.delete(self.clusters_url(name))

    def get(self, name: str) -> httpx.Response:
        return self.client.get(self.clusters_url(name))

    def phases(self) -> dict[str, str]:
        """name -> phase of every cluster the API still shows."""
        response = self.client.get(self.clusters_url())
        response.raise_for_status()
        return {item["name"]: item["status"]["phase"] for item in response.json()["items"]}

    def all_at(self, phase: str, names: list[str]) -> bool:
        phases = self.phases()
        return all(phases.get(name) == phase for name in names)

    def concurrently(self, call: Callable[[str], httpx.Response], names: list[str]) -> list[int]:
        """Send `call(name)` for every name at once; the status codes, in order."""
        with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
            return [response.status_code for response in pool.map(call, names)]

    def close(self) -> None:
        self.client.close()


def operations_by_pid(ledger: list[LedgerEntry], operation: str) -> dict[int, int]:
    """How many `operation`s the ledger attributes to each process id."""
    counts: dict[int, int] = {}
    for entry in ledger:
        if entry.operation == operation:
            pid = int(entry.actor.split(":")[1])
            counts[pid] = counts.get(pid, 0) + 1
    return counts


@contextlib.contextmanager
def process_group(
    workdir: Path, base_env: Mapping[str, str] | None = None
) -> Iterator[ProcessGroup]:
    group = ProcessGroup(workdir, base_env)
    try:
        yield group
    finally:
        group.close()
