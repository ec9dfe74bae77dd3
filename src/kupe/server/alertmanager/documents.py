"""A tenant's three Alertmanager documents (receivers, routes, global) opened from their
stored, sealed form; the service and the reconciler both read them through here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kupe.server.alertmanager.config import effective
from kupe.server.sealing import Sealer


def receiver_context(tenant_id: str, name: str) -> str:
    """What a sealed receiver is bound to: it opens only as this tenant's receiver `name`."""
    return f"kupe alertmanager receiver\n{tenant_id}\n{name}"


def global_context(tenant_id: str) -> str:
    return f"kupe alertmanager global\n{tenant_id}"


@dataclass(frozen=True)
class StoredReceiver:
    body: dict[str, Any]
    resource_version: int


@dataclass(frozen=True)
class Documents:
    """What is stored for one tenant (versions 0: never written)."""

    tenant_id: str
    version: int = 0
    generation: int = 0
    routes: list[Any] = field(default_factory=list)
    routes_version: int = 0
    global_: dict[str, Any] = field(default_factory=dict)
    global_version: int = 0
    receivers: dict[str, StoredReceiver] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.version > 0

    def bodies(self) -> dict[str, dict[str, Any]]:
        return {name: stored.body for name, stored in self.receivers.items()}

    def effective(self) -> dict[str, Any]:
        """The effective configuration (credentials in the clear)."""
        return effective(self.global_, self.routes, self.bodies())


@dataclass(frozen=True)
class StoredAlerting:
    """The rows of one tenant as stored (sealed parts still sealed)."""

    tenant_id: str
    version: int = 0
    generation: int = 0
    routes: list[Any] | None = None
    routes_version: int = 0
    global_sealed: str | None = None
    global_version: int = 0
    receivers: tuple[tuple[str, str, int], ...] = ()


def open_documents(sealer: Sealer, stored: StoredAlerting) -> Documents:
    """Open the sealed parts; SealingError when they do not open under this server key."""
    tenant_id = stored.tenant_id
    global_: dict[str, Any] = (
        json.loads(sealer.open(stored.global_sealed, global_context(tenant_id)))
        if stored.global_sealed
        else {}
    )
    return Documents(
        tenant_id=tenant_id,
        version=stored.version,
        generation=stored.generation,
        routes=list(stored.routes or []),
        routes_version=stored.routes_version,
        global_=global_,
        global_version=stored.global_version,
        receivers={
            name: StoredReceiver(
                json.loads(sealer.open(sealed, receiver_context(tenant_id, name))), rv
            )
            for name, sealed, rv in stored.receivers
        },
    )


def seal_receiver(sealer: Sealer, tenant_id: str, name: str, body: dict[str, Any]) -> str:
    return sealer.seal(json.dumps(body, sort_keys=True), receiver_context(tenant_id, name))


def seal_global(sealer: Sealer, tenant_id: str, body: dict[str, Any]) -> str | None:
    if not body:
        return None
    return sealer.seal(json.dumps(body, sort_keys=True), global_context(tenant_id))
