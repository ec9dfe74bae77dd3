"""Waiting for a cluster by watching it (see watch.py): what `wait` and `wait_deleted` do when
the server offers watch; their polling loops stay in clusters.py for the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from kupe.schemas.cluster import Cluster, ClusterPhase
from kupe.sdk.errors import (
    ClusterFailed,
    Expired,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    WaitError,
    WaitTimeout,
)
from kupe.sdk.watch import WatchUnavailable, watch_async, watch_sync

if TYPE_CHECKING:
    from collections.abc import Callable

    from kupe.sdk.client import AsyncClient, Client

# The shortest read timeout a waiting watch uses (near its deadline).
MIN_SILENCE = 0.5


def reached(cluster: Cluster, phase: ClusterPhase) -> bool:
    """True when `cluster` is in `phase`; Running also needs the current spec applied."""
    if cluster.status.phase != phase:
        return False
    # Right after an update the cluster still says Running for the old spec.
    if phase == "Running":
        return cluster.status.observed_generation >= cluster.generation
    return True


def check_hope(cluster: Cluster, phase: ClusterPhase) -> None:
    """Raise when `cluster` can no longer reach `phase`."""
    current = cluster.status.phase
    if current == "Failed" and phase != "Failed":
        raise ClusterFailed(cluster)
    if current == "Terminating" and phase != "Terminating":
        raise WaitError(
            f"Cluster {cluster.name} is being deleted; it will not become {phase}",
            cluster=cluster,
            code="CLUSTER_TERMINATING",
        )


def timeout_error(name: str, phase: str, timeout: float, cluster: Cluster | None) -> WaitTimeout:
    seen = f" (it is {cluster.status.phase})" if cluster is not None else ""
    return WaitTimeout(
        f"Cluster {name} did not become {phase} within {timeout:g}s{seen}", cluster=cluster
    )


def _deleted(name: str) -> NotFound:
    return NotFound(f"Cluster {name!r} was deleted", status=404, code="NOT_FOUND")


class Expiry:
    """A wait's deadline on the client's clock."""

    def __init__(self, monotonic: Callable[[], float], timeout: float) -> None:
        self.monotonic = monotonic
        self.deadline = monotonic() + timeout

    @property
    def remaining(self) -> float:
        return self.deadline - self.monotonic()


def wait_by_watch(
    client: Client,
    path: str,
    cluster: Cluster,
    phase: ClusterPhase | None,
    timeout: float,
    on_change: Callable[[Cluster], None] | None,
) -> Cluster | None:
    """Watch from `cluster` (just read) until it is in `phase` (None: until it is deleted,
    then None). Raises WatchUnavailable when the server cannot watch."""
    expiry = Expiry(client._monotonic, timeout)
    last = cluster.resource_version
    while True:
        if expiry.remaining <= 0:
            raise timeout_error(cluster.name, phase or "deleted", timeout, cluster)
        silence = max(MIN_SILENCE, expiry.remaining)
        try:
            for event in watch_sync(
                client, path, last, bookmarks=True, reconnect=False, silence=silence
            ):
                last = event.resource_version
                if event.cluster is not None:
                    if event.type == "DELETED":
                        if phase is None:
                            return None
                        raise _deleted(cluster.name)
                    cluster = event.cluster
                    if on_change is not None:
                        on_change(cluster)
                    if phase is not None and reached(cluster, phase):
                        return cluster
                    if phase is not None:
                        check_hope(cluster, phase)
                if expiry.remaining <= 0:
                    break
        except (httpx.TransportError, Expired, ServiceUnavailable, RateLimited):
            client._sleep(min(1.0, max(0.0, expiry.remaining)))
        except NotFound:
            if phase is None:
                return None
            raise


async def async_wait_by_watch(
    client: AsyncClient,
    path: str,
    cluster: Cluster,
    phase: ClusterPhase | None,
    timeout: float,  # noqa: ASYNC109  # the same signature as the sync wait
    on_change: Callable[[Cluster], None] | None,
) -> Cluster | None:
    """`wait_by_watch` for the async client."""
    expiry = Expiry(client._monotonic, timeout)
    last = cluster.resource_version
    while True:
        if expiry.remaining <= 0:
            raise timeout_error(cluster.name, phase or "deleted", timeout, cluster)
        silence = max(MIN_SILENCE, expiry.remaining)
        try:
            async for event in watch_async(
                client, path, last, bookmarks=True, reconnect=False, silence=silence
            ):
                last = event.resource_version
                if event.cluster is not None:
                    if event.type == "DELETED":
                        if phase is None:
                            return None
                        raise _deleted(cluster.name)
                    cluster = event.cluster
                    if on_change is not None:
                        on_change(cluster)
                    if phase is not None and reached(cluster, phase):
                        return cluster
                    if phase is not None:
                        check_hope(cluster, phase)
                if expiry.remaining <= 0:
                    break
        except (httpx.TransportError, Expired, ServiceUnavailable, RateLimited):
            await client._sleep(min(1.0, max(0.0, expiry.remaining)))
        except NotFound:
            if phase is None:
                return None
            raise


__all__ = ["WatchUnavailable", "async_wait_by_watch", "check_hope", "reached", "wait_by_watch"]
