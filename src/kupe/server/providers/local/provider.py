"""The local provider: observe / ensure / delete real control planes run by kwokctl.

Everything it knows lives in the workdir (records, kwokctl's clusters, pid files), never only in
memory: a restarted Kupe adopts the clusters that run, and a call interrupted by a crash is
finished by the next one. Calls that change a cluster hold its file lock, so several Kupe
processes may share one workdir.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

from lightkube import ApiError

from kupe.server.providers.base import (
    ClusterSpec,
    InfraPhase,
    InfraState,
    PermanentProviderError,
    Provider,
    SecretConflict,
    SecretCopy,
    TransientProviderError,
)
from kupe.server.providers.local import LocalSettings
from kupe.server.providers.local.binaries import KUBERNETES_PATCHES, BinaryCache, minor_key
from kupe.server.providers.local.cluster_api import (
    MANAGED_BY,
    UNREACHABLE,
    AdminCredentials,
    ClusterApi,
    Resources,
    is_managed,
    secret_data,
)
from kupe.server.providers.local.control_plane import ControlPlanes
from kupe.server.providers.local.kwokctl import KwokctlError
from kupe.server.providers.local.processes import dead_components
from kupe.server.providers.local.state import ClusterRecord, InvalidClusterId, Ports, Workdir
from kupe.server.providers.registry import ProviderContext

_OFFERED_TTL_SECONDS: Final = 5.0
_NO_PORTS: Final = Ports(0, 0, 0, 0, 0, 0)


def default_max_clusters(running: int, cluster_memory_mb: int) -> int:
    """Clusters that fit: those running now plus as many as the available memory holds."""
    available = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    return max(1, running + available // (cluster_memory_mb * 2**20))


def _find_kubectl(configured: Path | None) -> Path | None:
    if configured is not None:
        return configured
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    return Path(found) if found else None


class LocalProvider(Provider):
    """Clusters as kwokctl binary-runtime control planes on 127.0.0.1; see the module doc."""

    name = "local"

    def __init__(self, settings: LocalSettings, context: ProviderContext) -> None:
        self.settings = settings
        self.context = context
        self.cache = BinaryCache(settings.cache_dir)
        self.workdir = Workdir((settings.workdir or context.data_dir / "local").resolve())
        self.planes = ControlPlanes(
            settings, self.cache, self.workdir, _find_kubectl(settings.kubectl), context.api_url
        )
        self.max_clusters = settings.max_clusters or default_max_clusters(
            len(self.workdir.all_records()), settings.cluster_memory_mb
        )
        self._apis: dict[str, ClusterApi] = {}
        self._offered: tuple[float, list[str]] | None = None

    # -- the Provider protocol ---------------------------------------------------------------

    async def observe(self, cluster_id: str) -> InfraState | None:
        record = self._load(cluster_id)
        return None if record is None else await self._state(record)

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        self._load(spec.id)  # validates the id
        async with self._errors(spec.id), self.workdir.cluster_lock(spec.id):
            record = self.workdir.load(spec.id)
            if record is not None and record.deleting:
                raise TransientProviderError("the cluster is being deleted")
            if record is None:
                self._require_installed(spec.version)
                reservation = await self.workdir.reserve(
                    ClusterRecord(spec.id, spec.tenant, spec.name, spec.version, _NO_PORTS),
                    max_clusters=self.max_clusters,
                    port_range=(self.settings.port_min, self.settings.port_max),
                )
                if reservation.record is None:
                    return _waiting(spec, reservation.waiting)
                record = reservation.record
                self._count("create")
            fresh, changed = not record.created, False
            if fresh:
                record = record.replace(minor=spec.version)
                self._require_installed(record.minor)
                self.workdir.save(record)
                await self.planes.create(record)
            else:
                if record.upgrade_target is not None or record.minor != spec.version:
                    record = await self._upgrade(record, spec.version)
                changed = await self.planes.heal(record)
            api = self._api(record)
            await self._wait_serving(record, api.ready, "the API server is not ready")
            if fresh:
                record = record.replace(created=True)
                self.workdir.save(record)
            wanted = Resources(spec.cpu_millis, spec.memory_bytes, spec.storage_bytes)
            changed = await api.bind_kupe_roles() or changed
            # Tokens of readonly users work only once `view` has its aggregated rules.
            await self._wait_serving(record, api.roles_aggregated, "RBAC roles are not filled")
            changed = await api.size_nodes(wanted, self.settings.nodes) or changed
            if changed and not fresh:
                self._count("update")
            record = record.replace(
                cpu_millis=spec.cpu_millis,
                memory_bytes=spec.memory_bytes,
                storage_bytes=spec.storage_bytes,
                kubernetes_version=await api.git_version(),
                alerts=spec.alerts,
            )
            self.workdir.save(record)
            return await self._state(record)

    async def delete(self, cluster_id: str) -> InfraState | None:
        record = self._load(cluster_id)
        cluster_dir = self.workdir.cluster_dir(cluster_id)
        if record is None and not cluster_dir.exists():
            return None
        async with self._errors(cluster_id), self.workdir.cluster_lock(cluster_id):
            record = self.workdir.load(cluster_id)
            if record is not None and not record.deleting:
                self.workdir.save(record.replace(deleting=True))
                self._count("delete")
            elif record is None and cluster_dir.exists():
                self._count("delete")
            api = self._apis.pop(cluster_id, None)
            if api is not None:
                await api.aclose()
            await self.planes.remove(cluster_id)
            self.workdir.forget(cluster_id)
        self.workdir.drop_lock(cluster_id)
        return None

    def offered_versions(self) -> list[str]:
        """The minors whose binaries are installed and verified (cached for a few seconds)."""
        now = time.monotonic()
        if self._offered is None or now - self._offered[0] > _OFFERED_TTL_SECONDS:
            installed = [m for m in self.cache.installed_minors() if m in KUBERNETES_PATCHES]
            self._offered = (now, installed)
        return list(self._offered[1])

    async def aclose(self) -> None:
        apis, self._apis = list(self._apis.values()), {}
        for api in apis:
            await api.aclose()

    # -- capabilities ------------------------------------------------------------------------

    def accepts_kupe_tokens(self) -> bool:
        return True

    async def read_secret(self, cluster_id: str, namespace: str, name: str) -> SecretCopy | None:
        async with self._errors(cluster_id):
            found = await self._serving_api(cluster_id).get_secret(namespace, name)
        if found is None:
            return None
        metadata = found.metadata
        return SecretCopy(
            namespace=namespace,
            name=name,
            data=secret_data(found),
            labels=dict((metadata.labels if metadata else None) or {}),
            annotations=dict((metadata.annotations if metadata else None) or {}),
        )

    async def write_secret(self, cluster_id: str, secret: SecretCopy) -> None:
        async with self._errors(cluster_id):
            api = self._serving_api(cluster_id)
            existing = await api.get_secret(secret.namespace, secret.name)
            if existing is not None and not is_managed(existing):
                raise SecretConflict(
                    f"Secret {secret.namespace}/{secret.name} exists in the cluster and is not "
                    "managed by Kupe; it was left untouched"
                )
            if existing is None:
                await api.ensure_namespace(secret.namespace)
            labels = {**secret.labels, MANAGED_BY[0]: MANAGED_BY[1]}
            await api.put_secret(
                secret.namespace, secret.name, secret.data, labels, secret.annotations, existing
            )

    async def delete_secret(self, cluster_id: str, namespace: str, name: str) -> None:
        async with self._errors(cluster_id):
            api = self._serving_api(cluster_id)
            existing = await api.get_secret(namespace, name)
            if existing is not None and is_managed(existing):
                await api.delete_secret(namespace, name)

    # -- what the infrastructure says --------------------------------------------------------

    async def _state(self, record: ClusterRecord) -> InfraState:
        cluster_dir = self.workdir.cluster_dir(record.id)
        busy = self.workdir.is_busy(record.id)
        resources = Resources(record.cpu_millis, record.memory_bytes, record.storage_bytes)
        version, message = record.kubernetes_version, ""
        if record.deleting:
            phase = InfraPhase.DELETING
        elif not record.created:
            phase = InfraPhase.CREATING
            resources = Resources(0, 0, 0)  # nothing is sized before the API server serves
            message = "starting the control plane" if busy else "resuming an interrupted create"
        else:
            api = self._api(record)
            dead = dead_components(cluster_dir)
            healthy = not dead and await api.ready()
            if healthy:
                with contextlib.suppress(*UNREACHABLE, ApiError):
                    version = await api.git_version()
                    resources = await api.node_totals()
            if record.upgrade_target is not None and busy:
                phase = InfraPhase.UPDATING
                message = f"upgrading to {record.upgrade_target}"
            elif healthy:
                phase = InfraPhase.READY
            else:
                phase = InfraPhase.UNHEALTHY
                message = (
                    f"stopped: {', '.join(dead)}" if dead else "the API server does not answer"
                )
        return InfraState(
            id=record.id,
            phase=phase,
            version=record.minor,
            kubernetes_version=version,
            endpoint=f"https://127.0.0.1:{record.ports.apiserver}" if record.created else "",
            ca_certificate=self._ca(record) if record.created else "",
            cpu_millis=resources.cpu_millis,
            memory_bytes=resources.memory_bytes,
            storage_bytes=resources.storage_bytes,
            message=message,
            alerts=record.alerts,
        )

    def _ca(self, record: ClusterRecord) -> str:
        try:
            return (self.workdir.cluster_dir(record.id) / "pki" / "ca.crt").read_text()
        except FileNotFoundError:
            return ""

    # -- changing it -------------------------------------------------------------------------

    async def _upgrade(self, record: ClusterRecord, target: str) -> ClusterRecord:
        if record.upgrade_target is None:
            if minor_key(target) != minor_key(record.minor) + 1:
                raise PermanentProviderError(
                    f"cannot change version from {record.minor} to {target}: local clusters "
                    "upgrade one minor at a time and never down"
                )
            self._require_installed(target)
            record = record.replace(upgrade_target=target)
            self.workdir.save(record)
            self._count("update")
        # An upgrade interrupted by a crash is finished first, whatever is asked now.
        target = record.upgrade_target or target
        await self.planes.switch_version(record, target)
        await self._wait_serving(record, self._api(record).ready, "the API server is not ready")
        record = record.replace(minor=target, upgrade_target=None)
        self.workdir.save(record)
        return record

    async def _wait_serving(
        self, record: ClusterRecord, check: Callable[[], Awaitable[bool]], failure: str
    ) -> None:
        """Wait until `check` holds, starting again what dies meanwhile: on a loaded machine
        the controller manager gives up (exits) when the API server is slow to become healthy."""
        cluster_dir = self.workdir.cluster_dir(record.id)

        async def healed_and(check: Callable[[], Awaitable[bool]]) -> bool:
            if dead_components(cluster_dir):
                await self.planes.heal(record)
                return False  # look again once it had time to start
            return await check()

        await self.planes.wait_until(lambda: healed_and(check), failure)

    # -- helpers -----------------------------------------------------------------------------

    def _api(self, record: ClusterRecord) -> ClusterApi:
        endpoint = f"https://127.0.0.1:{record.ports.apiserver}"
        api = self._apis.get(record.id)
        if api is None or api.endpoint != endpoint:
            pki = self.workdir.cluster_dir(record.id) / "pki"
            api = self._apis[record.id] = ClusterApi(endpoint, AdminCredentials.in_pki(pki))
        return api

    def _serving_api(self, cluster_id: str) -> ClusterApi:
        record = self._load(cluster_id)
        if record is None:
            raise PermanentProviderError(f"there is no local cluster {cluster_id}")
        if not record.created or record.deleting:
            raise TransientProviderError("the cluster is not serving yet")
        return self._api(record)

    def _load(self, cluster_id: str) -> ClusterRecord | None:
        try:
            return self.workdir.load(cluster_id)
        except InvalidClusterId as exc:
            raise PermanentProviderError(str(exc)) from None

    def _require_installed(self, minor: str) -> None:
        offered = self.cache.installed_minors()
        if minor not in offered:
            raise PermanentProviderError(
                f"Kubernetes {minor} is not installed for the local provider (installed: "
                f"{', '.join(offered) or 'none'}); run `kupe local install --versions {minor}`"
            )

    def _count(self, operation: str) -> None:
        self.context.metrics.provider_operations.labels(self.name, operation).inc()

    @contextlib.asynccontextmanager
    async def _errors(self, cluster_id: str) -> AsyncIterator[None]:
        """Failures of processes and of the cluster's API as the protocol's errors."""
        try:
            yield
        except KwokctlError as exc:
            raise TransientProviderError(str(exc)) from exc
        except ApiError as exc:
            code = exc.status.code or 0
            error = PermanentProviderError if code in (400, 422) else TransientProviderError
            raise error(f"cluster API: {exc.status.message or exc}") from exc
        except UNREACHABLE as exc:
            raise TransientProviderError(f"cluster {cluster_id} unreachable: {exc}") from exc


def _waiting(spec: ClusterSpec, why: str) -> InfraState:
    return InfraState(
        id=spec.id,
        phase=InfraPhase.CREATING,
        version=spec.version,
        kubernetes_version="",
        endpoint="",
        ca_certificate="",
        cpu_millis=0,
        memory_bytes=0,
        storage_bytes=0,
        message=why,
    )
