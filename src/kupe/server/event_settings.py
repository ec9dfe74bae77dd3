"""Settings of the event record and its watchers (`KUPE_EVENTS__<FIELD>`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EventsSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    retention_days: float = Field(
        30.0,
        gt=0,
        description="How long events are kept; a watch from an older resourceVersion gets 410 "
        "EXPIRED (an object's newest event stays while the object lives).",
    )
    prune_batch: int = Field(
        1000, ge=1, le=100_000, description="Most events deleted in one pruning transaction."
    )
    prune_interval_seconds: float = Field(
        60.0, gt=0, description="How often the reconciler prunes expired events."
    )
    heartbeat_seconds: float = Field(
        15.0, gt=0, description="An idle watch stream gets a heartbeat this often."
    )
    poll_seconds: float = Field(
        0.05,
        gt=0,
        description="How often the shared reader looks for new events without a notification "
        "(SQLite; PostgreSQL is woken by LISTEN/NOTIFY and looks every second regardless).",
    )
    watcher_queue: int = Field(
        1000,
        ge=1,
        description="Events a watcher may fall behind by; a slower one's stream is ended (it "
        "resumes from its last resourceVersion).",
    )
