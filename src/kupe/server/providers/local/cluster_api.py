"""Talking to one local cluster's API server with the admin certificate kwokctl generated:
health and version (plain HTTPS), nodes, RBAC bindings and Secrets (lightkube).

The admin credentials never leave this module's clients: they are read from kwokctl's PKI in
the workdir and used to reach 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import httpx
import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.models.core_v1 import NodeStatus
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import Namespace, Node, Secret
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding
from lightkube.types import PatchType

MANAGED_BY: Final = ("app.kubernetes.io/managed-by", "kupe")
NODE_LABEL: Final = "kupe.dev/node"
# Kupe roles → the ClusterRole their tokens' group is bound to inside every cluster.
ROLE_BINDINGS: Final = {"kupe:admin": "cluster-admin", "kupe:readonly": "view"}
PODS_PER_NODE: Final = "110"
_SUFFIXES: Final[dict[str, Fraction]] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY: Final = re.compile(r"\A([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|([a-zA-Z]*))\Z")
UNREACHABLE: Final = (httpx.TransportError, httpx2.TransportError, OSError, ssl.SSLError)


def parse_quantity(text: str) -> Fraction:
    """A Kubernetes quantity ("1500m", "16Gi", "1e3") as an exact number."""
    match = _QUANTITY.match(text.strip())
    if match is None or (match[3] is not None and match[3] not in _SUFFIXES):
        raise ValueError(f"not a quantity: {text!r}")
    number = Fraction(match[1])
    if match[2] is not None:
        return number * Fraction(10) ** int(match[2])
    return number * _SUFFIXES[match[3] or ""]


@dataclass(frozen=True)
class Resources:
    cpu_millis: int
    memory_bytes: int
    storage_bytes: int


def node_shares(total: Resources, count: int) -> list[Resources]:
    """`total` split over `count` nodes; the first takes the remainders, so the sum is exact."""
    count = max(1, min(count, total.cpu_millis, total.memory_bytes, total.storage_bytes))
    shares = []
    for index in range(count):
        first = index == 0
        shares.append(
            Resources(
                cpu_millis=total.cpu_millis // count + (total.cpu_millis % count if first else 0),
                memory_bytes=total.memory_bytes // count
                + (total.memory_bytes % count if first else 0),
                storage_bytes=total.storage_bytes // count
                + (total.storage_bytes % count if first else 0),
            )
        )
    return shares


def _resource_list(share: Resources) -> dict[str, str]:
    return {
        "cpu": f"{share.cpu_millis}m",
        "memory": str(share.memory_bytes),
        "ephemeral-storage": str(share.storage_bytes),
        "pods": PODS_PER_NODE,
    }


def _node_resources(node: Node) -> Resources:
    allocatable: Mapping[str, str] = (node.status.allocatable if node.status else None) or {}
    return Resources(
        cpu_millis=int(parse_quantity(allocatable.get("cpu", "0")) * 1000),
        memory_bytes=int(parse_quantity(allocatable.get("memory", "0"))),
        storage_bytes=int(parse_quantity(allocatable.get("ephemeral-storage", "0"))),
    )


@dataclass(frozen=True)
class AdminCredentials:
    """Where kwokctl keeps a cluster's CA and admin certificate."""

    ca: Path
    certificate: Path
    key: Path

    @classmethod
    def in_pki(cls, pki_dir: Path) -> AdminCredentials:
        return cls(pki_dir / "ca.crt", pki_dir / "admin.crt", pki_dir / "admin.key")

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.certificate), str(self.key))
        return context


class ClusterApi:
    """Clients of one API server, made on first use and kept until `aclose`."""

    def __init__(self, endpoint: str, credentials: AdminCredentials) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self._http: httpx.AsyncClient | None = None
        self._kube: AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.endpoint,
                verify=self.credentials.ssl_context(),
                timeout=httpx.Timeout(5.0, connect=2.0),
                trust_env=False,
            )
        return self._http

    @property
    def kube(self) -> AsyncClient:
        if self._kube is None:
            config = KubeConfig.from_one(
                cluster=Cluster(server=self.endpoint, certificate_auth=str(self.credentials.ca)),
                user=User(
                    client_cert=str(self.credentials.certificate),
                    client_key=str(self.credentials.key),
                ),
            )
            self._kube = AsyncClient(config, trust_env=False, field_manager="kupe")
        return self._kube

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._kube is not None:
            await self._kube.close()
        self._http = self._kube = None

    # -- health --------------------------------------------------------------------------

    async def ready(self) -> bool:
        """Whether the API server answers /readyz with ok."""
        try:
            response = await self.http.get("/readyz")
        except UNREACHABLE:
            return False
        return response.status_code == 200

    async def git_version(self) -> str:
        response = await self.http.get("/version")
        response.raise_for_status()
        return str(response.json()["gitVersion"])

    # -- nodes ---------------------------------------------------------------------------

    async def node_totals(self) -> Resources:
        """The allocatable resources of Kupe's nodes, summed."""
        cpu = memory = storage = 0
        async for node in self.kube.list(Node, labels={NODE_LABEL: "true"}):
            share = _node_resources(node)
            cpu += share.cpu_millis
            memory += share.memory_bytes
            storage += share.storage_bytes
        return Resources(cpu, memory, storage)

    async def size_nodes(self, total: Resources, count: int) -> bool:
        """Make Kupe's nodes add up to `total`: create missing ones, resize the others in
        place (their status; kwok keeps what is set), remove extra ones. True if it changed."""
        wanted = {
            f"kupe-node-{index}": share for index, share in enumerate(node_shares(total, count))
        }
        existing = {
            node.metadata.name: node
            async for node in self.kube.list(Node, labels={NODE_LABEL: "true"})
            if node.metadata is not None and node.metadata.name
        }
        changed = False
        for name, share in wanted.items():
            resources = _resource_list(share)
            if name not in existing:
                # Created with its status (a Node keeps it, as a kubelet's registration does),
                # so kwok never initialises it with its own defaults first.
                node = Node(
                    metadata=ObjectMeta(
                        name=name,
                        labels={NODE_LABEL: "true", "type": "kwok"},
                        annotations={"kwok.x-k8s.io/node": "fake"},
                    ),
                    status=NodeStatus(capacity=resources, allocatable=resources),
                )
                await self.kube.create(node)
                changed = True
            elif _node_resources(existing[name]) != share:
                await self.kube.patch(
                    Node.Status,
                    name,
                    {"status": {"capacity": resources, "allocatable": resources}},
                    patch_type=PatchType.MERGE,
                )
                changed = True
        for name in existing.keys() - wanted.keys():
            await self.kube.delete(Node, name)
            changed = True
        return changed

    # -- RBAC ----------------------------------------------------------------------------

    async def bind_kupe_roles(self) -> bool:
        """Bind each Kupe role's group to its ClusterRole; True if a binding was written."""
        changed = False
        for group, role in ROLE_BINDINGS.items():
            binding = ClusterRoleBinding(
                metadata=ObjectMeta(name=group, labels=dict([MANAGED_BY])),
                roleRef=RoleRef(
                    apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=role
                ),
                subjects=[Subject(kind="Group", name=group, apiGroup="rbac.authorization.k8s.io")],
            )
            try:
                current = await self.kube.get(ClusterRoleBinding, group)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                await self.kube.create(binding)
                changed = True
                continue
            if current.roleRef.name != role or current.subjects != binding.subjects:
                # roleRef cannot change in place.
                await self.kube.delete(ClusterRoleBinding, group)
                await self.kube.create(binding)
                changed = True
        return changed

    async def roles_aggregated(self) -> bool:
        """Whether the ClusterRoles Kupe's roles bind to have their rules (the controller
        manager fills `view` by aggregation a moment after the API server serves)."""
        for role in ROLE_BINDINGS.values():
            try:
                found = await self.kube.get(ClusterRole, role)
            except ApiError as exc:
                if exc.status.code == 404:
                    return False
                raise
            if not found.rules:
                return False
        return True

    # -- Secrets -------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> Secret | None:
        try:
            return await self.kube.get(Secret, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    async def ensure_namespace(self, namespace: str) -> None:
        try:
            await self.kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
        except ApiError as exc:
            if exc.status.code != 409:
                raise

    async def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        existing: Secret | None,
    ) -> None:
        """Create the Opaque Secret, or replace `existing` (Kupe's) with it."""
        body: dict[str, Any] = {
            "metadata": ObjectMeta(
                name=name,
                namespace=namespace,
                labels=dict(labels),
                annotations=dict(annotations) or None,
                resourceVersion=existing.metadata.resourceVersion
                if existing is not None and existing.metadata is not None
                else None,
            ),
            "type": "Opaque",
            "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
        }
        secret = Secret(**body)
        if existing is None:
            await self.kube.create(secret)
        elif existing.type not in (None, "Opaque"):
            # A Secret's type cannot change in place.
            await self.kube.delete(Secret, name, namespace=namespace)
            secret.metadata.resourceVersion = None  # type: ignore[union-attr]
            await self.kube.create(secret)
        else:
            await self.kube.replace(secret)

    async def delete_secret(self, namespace: str, name: str) -> None:
        try:
            await self.kube.delete(Secret, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise


def is_managed(secret: Secret) -> bool:
    labels = (secret.metadata.labels if secret.metadata else None) or {}
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1]


def secret_data(secret: Secret) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
