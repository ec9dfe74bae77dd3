"""Webhook wire models (API §11): where a tenant's events go, and how each delivery went."""

from __future__ import annotations

from pydantic import Field

from kupe.schemas.common import ResponseModel, Timestamp, WireModel

# Every event type a hook may subscribe to; `"*"` is all of them, `"<kind>.*"` all of a kind.
EVENT_TYPES = (
    "cluster.created",
    "cluster.phase_changed",
    "cluster.updated",
    "cluster.deleted",
    "apikey.created",
    "apikey.revoked",
    "member.added",
    "member.updated",
    "member.removed",
    "secret.created",
    "secret.updated",
    "secret.deleted",
    "tenant.updated",
    "tenant.deleted",
)
MAX_EVENTS = 32
SECRET_MIN, SECRET_MAX = 16, 200


class WebhookCreate(WireModel):
    url: str = Field(max_length=2048, description="https:// (or http://) URL to POST events to.")
    events: list[str] = Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description='Event types, e.g. "cluster.created"; "*" is every type, "cluster.*" '
        "every type of a kind.",
    )
    secret: str | None = Field(
        None,
        min_length=SECRET_MIN,
        max_length=SECRET_MAX,
        description="Signing secret; absent: Kupe generates one (shown once, in the 201).",
    )


class WebhookUpdate(WireModel):
    url: str | None = Field(None, max_length=2048, description="A new URL.")
    events: list[str] | None = Field(
        None, min_length=1, max_length=MAX_EVENTS, description="A new list of event types."
    )
    secret: str | None = Field(
        None, min_length=SECRET_MIN, max_length=SECRET_MAX, description="A new signing secret."
    )
    enabled: bool | None = Field(
        None, description="true re-enables a disabled hook; delivery resumes where it stopped."
    )


class WebhookStatus(ResponseModel):
    disabled: bool = Field(description="Whether deliveries have stopped.")
    reason: str | None = Field(None, description="Why the hook was disabled.")
    disabled_at: Timestamp | None = None
    failing_since: Timestamp | None = Field(
        None, description="When the delivery now being retried first failed."
    )


class Webhook(ResponseModel):
    id: str
    url: str
    events: list[str]
    created_by: str
    created_at: Timestamp
    resource_version: str
    status: WebhookStatus


class WebhookCreated(Webhook):
    """The answer to a create: the only time the signing secret is shown."""

    secret: str = Field(description="The signing secret (Kupe-Signature's HMAC key).")


class WebhookDelivery(ResponseModel):
    id: str
    event_id: str
    event_type: str
    attempt: int = Field(description="1 for the first try of this event, 2 for its first retry…")
    time: Timestamp
    status_code: int | None = Field(None, description="The receiver's HTTP status, if any.")
    error: str | None = Field(None, description="Why no status came back (timeout, refusal).")
    duration_ms: int
    delivered: bool
    next_retry_at: Timestamp | None = None
