"""Wire models of events: a cluster's timeline entries and watch stream lines (API §11)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kupe.schemas.cluster import Cluster
from kupe.schemas.common import ResponseModel, Timestamp

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class TimelineEntry(ResponseModel):
    """One step in a cluster's life."""

    type: EventType = Field(description="ADDED, MODIFIED or DELETED.")
    reason: str = Field(
        description="Created, ProvisioningStarted, Running, UpgradeStarted, Upgraded, "
        "MigrationStarted, Updated, Degraded, Recovered, Failed, DeleteRequested or Deleted."
    )
    message: str | None = Field(None, description="Details, e.g. the provider's reason.")
    time: Timestamp
    actor: str | None = Field(
        None, description="Who made the change: member email, apikey:<id>, operator or system."
    )
    resource_version: str = Field(description="The cluster's resourceVersion after the change.")


class Timeline(ResponseModel):
    """A cluster's timeline, oldest first (within the event retention)."""

    items: list[TimelineEntry]


class Bookmark(ResponseModel):
    """A BOOKMARK line's object: resume a watch from here."""

    resource_version: str


class ClusterWatchEvent(ResponseModel):
    """One line of a cluster watch stream (NDJSON), or one SSE `data:`."""

    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    object: Cluster | Bookmark
