"""Which webhook event an outbox event is, whether a hook subscribed to it, and the JSON a
delivery carries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kupe.schemas.webhook import EVENT_TYPES

ALL = "*"
# Timeline reasons that are not a phase change.
_NOT_PHASES = frozenset({"Created", "Deleted", "Updated"})
_SIMPLE: dict[tuple[str, str], str] = {
    ("cluster", "ADDED"): "cluster.created",
    ("cluster", "DELETED"): "cluster.deleted",
    ("apikey", "ADDED"): "apikey.created",
    ("apikey", "DELETED"): "apikey.revoked",
    ("member", "ADDED"): "member.added",
    ("member", "MODIFIED"): "member.updated",
    ("member", "DELETED"): "member.removed",
    ("secret", "ADDED"): "secret.created",
    ("secret", "MODIFIED"): "secret.updated",
    ("secret", "DELETED"): "secret.deleted",
    ("tenant", "MODIFIED"): "tenant.updated",
    ("tenant", "DELETED"): "tenant.deleted",
}


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is no subscription (None: it is `*`, a known type or `<kind>.*`)."""
    if pattern == ALL or pattern in EVENT_TYPES:
        return None
    if pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in EVENT_TYPES):
        return None
    return f"unknown event type {pattern[:80]!r}"


def webhook_type(kind: str, type_: str, reason: str | None) -> str | None:
    """The webhook event type of an outbox event; None for changes hooks are not told of (a
    cluster's new metrics, a key's lastUsedAt)."""
    if kind == "cluster" and type_ == "MODIFIED":
        if reason == "Updated":
            return "cluster.updated"
        if reason is not None and reason not in _NOT_PHASES:
            return "cluster.phase_changed"
        return None
    return _SIMPLE.get((kind, type_))


def subscribed(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern in (ALL, event_type):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class HookEvent:
    """One outbox event on its way to a hook."""

    resource_version: int
    kind: str
    object_id: str
    type: str  # the webhook event type
    tenant: str
    object: str  # the object's public JSON text
    actor: str
    time: datetime
    request_id: str | None = None
    reason: str | None = None
    message: str | None = None

    @property
    def id(self) -> str:
        """Stable across retries and replicas: receivers de-duplicate by it."""
        digest = hashlib.sha256(f"{self.kind}/{self.object_id}".encode()).hexdigest()[:16]
        return f"ev-{self.resource_version}-{digest}"

    def body(self) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "time": self.time.astimezone(UTC).replace(microsecond=0).isoformat()[:-6] + "Z",
            "tenant": self.tenant,
            "resourceVersion": str(self.resource_version),
            "actor": self.actor,
            "object": json.loads(self.object),
        }
        if self.request_id:
            payload["requestId"] = self.request_id
        if self.reason:
            payload["reason"] = self.reason
        if self.message:
            payload["message"] = self.message
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
