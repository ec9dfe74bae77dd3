"""Lifecycle phases, one enumeration per kind, shared by server, SDK and CLI."""

from __future__ import annotations

from enum import StrEnum


class ClusterPhase(StrEnum):
    """`status.phase` of a cluster (API §4)."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    UPGRADING = "Upgrading"
    MIGRATING = "Migrating"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    TERMINATING = "Terminating"


# Phases in which a cluster serves connections (connection details, credentials).
CONNECTABLE_PHASES = frozenset(
    {ClusterPhase.RUNNING, ClusterPhase.UPGRADING, ClusterPhase.MIGRATING, ClusterPhase.DEGRADED}
)
# Phases before the cluster was ever Running.
PROVISIONING_PHASES = frozenset({ClusterPhase.PENDING, ClusterPhase.PROVISIONING})
# Phases a client waiting for a change can stop at.
SETTLED_PHASES = frozenset({ClusterPhase.RUNNING, ClusterPhase.DEGRADED})


class TenantPhase(StrEnum):
    """`status.phase` of a tenant (API §3)."""

    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    TERMINATING = "Terminating"
