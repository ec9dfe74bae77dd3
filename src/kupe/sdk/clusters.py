"""Clusters (API §4): CRUD, connection details, kubeconfig, wait and read-modify-write."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from kupe.core.kubeconfig import build_kubeconfig
from kupe.schemas.cluster import (
    Cluster,
    ClusterPhase,
    ClusterType,
    ClusterUpdate,
    ConnectionDetails,
    ResourcesInput,
)
from kupe.schemas.credential import ClusterCredential
from kupe.schemas.event import Timeline
from kupe.sdk._http import (
    Call,
    Core,
    if_changed,
    if_match_header,
    list_params,
    model,
    nothing,
    page,
    quoted_etag,
    segment,
)
from kupe.sdk.errors import NotFound
from kupe.sdk.waiting import (
    async_wait_by_watch,
    check_hope,
    reached,
    timeout_error,
    wait_by_watch,
)
from kupe.sdk.watch import WatchEvent, WatchUnavailable, streams, watch_async, watch_sync

if TYPE_CHECKING:
    from kupe.sdk.client import AsyncClient, Client

__all__ = ["AsyncClusters", "Clusters", "KubeconfigDocument", "OnChange", "WatchEvent"]

OnChange = Callable[[Cluster], None]
"""Called with the cluster each time wait() sees it change."""
KubeconfigDocument = dict[str, object]
Resources = ResourcesInput | Mapping[str, str]
Change = Callable[[Cluster], ClusterUpdate | None]


class _Calls:
    """The requests of the clusters API, shared by the sync and async resources."""

    def __init__(self, core: Core) -> None:
        self.core = core

    def path(self, name: str | None = None, suffix: str = "") -> str:
        tail = "" if name is None else f"/{segment(name)}{suffix}"
        return self.core.tenant_path(f"/clusters{tail}")

    def list(self, limit: int | None, token: str | None) -> Call[tuple[list[Cluster], str | None]]:
        return Call("GET", self.path(), page(Cluster), params=list_params(limit, token))

    def get(self, name: str) -> Call[Cluster]:
        return Call("GET", self.path(name), model(Cluster))

    def events(self, name: str) -> Call[Timeline]:
        return Call("GET", self.path(name, "/events"), model(Timeline))

    def get_if_changed(self, name: str, resource_version: str) -> Call[Cluster | None]:
        headers = {"If-None-Match": quoted_etag(resource_version)}
        return Call("GET", self.path(name), if_changed(Cluster), headers=headers)

    def create(
        self,
        name: str,
        display_name: str,
        type: ClusterType,
        version: str | None,
        resources: Resources | None,
        alerts: Mapping[str, object] | None,
        idempotency_key: str | None,
        high_availability: bool | None = None,
    ) -> Call[Cluster]:
        body: dict[str, object] = {"name": name, "displayName": display_name, "type": type}
        if version is not None:
            body["version"] = version
        if resources is not None:
            body["resources"] = _resources(resources)
        if alerts is not None:
            body["alerts"] = dict(alerts)
        if high_availability is not None:
            body["highAvailability"] = high_availability
        # A key on every create makes the POST safe to resend after a lost answer.
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        return Call("POST", self.path(), model(Cluster), body=body, headers=headers)

    def update(
        self, name: str, body: Mapping[str, object], if_match: str | int | None
    ) -> Call[Cluster]:
        return Call(
            "PATCH",
            self.path(name),
            model(Cluster),
            body=dict(body),
            headers=if_match_header(if_match),
        )

    def delete(self, name: str, if_match: str | int | None) -> Call[None]:
        return Call("DELETE", self.path(name), nothing, headers=if_match_header(if_match))

    def connection_details(self, name: str) -> Call[ConnectionDetails]:
        return Call("GET", self.path(name, "/kubeconfig"), model(ConnectionDetails))

    def kubeconfig(self, name: str, details: ConnectionDetails) -> KubeconfigDocument:
        settings = self.core.settings
        document: KubeconfigDocument = build_kubeconfig(
            settings.tenant or "",
            name,
            details.endpoint,
            details.certificate_authority,
            settings.api_url,
        )
        return document

    def credentials(self, name: str, expiration_seconds: int | None) -> Call[ClusterCredential]:
        body = {} if expiration_seconds is None else {"expirationSeconds": expiration_seconds}
        # Any POST is safe to resend with its Idempotency-Key.
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return Call(
            "POST",
            self.path(name, "/credentials"),
            model(ClusterCredential),
            body=body,
            headers=headers,
        )


def _resources(resources: Resources) -> dict[str, str]:
    if isinstance(resources, ResourcesInput):
        return resources.model_dump(exclude_none=True)
    return {key: value for key, value in resources.items() if value is not None}


def _update_body(
    version: str | None,
    resources: Resources | None,
    alerts: Mapping[str, object] | None,
    clear_alerts: bool,
    high_availability: bool | None = None,
) -> dict[str, object]:
    body: dict[str, object] = {}
    if high_availability is not None:
        body["highAvailability"] = high_availability
    if version is not None:
        body["version"] = version
    if resources is not None:
        body["resources"] = _resources(resources)
    if clear_alerts:
        body["alerts"] = None
    elif alerts is not None:
        body["alerts"] = dict(alerts)
    return body


def _patch_body(update: ClusterUpdate) -> dict[str, object]:
    # exclude_unset keeps an explicit `alerts=None` (clear) and drops what was never set.
    body: dict[str, object] = update.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return body


class Clusters:
    """`client.clusters`: the tenant's clusters."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    def list(self, *, page_size: int | None = None) -> list[Cluster]:
        """Every cluster, sorted by name; `page_size` fetches them in pages of that size."""
        return self._client._send_all(lambda token: self._calls.list(page_size, token))

    def get(self, name: str) -> Cluster:
        """One cluster by name."""
        return self._client._send(self._calls.get(name))

    def create(
        self,
        name: str,
        *,
        display_name: str,
        type: ClusterType,
        version: str | None = None,
        resources: Resources | None = None,
        alerts: Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
        high_availability: bool | None = None,
    ) -> Cluster:
        """Create a cluster (phase Pending); an Idempotency-Key is generated unless given."""
        call = self._calls.create(
            name,
            display_name,
            type,
            version,
            resources,
            alerts,
            idempotency_key,
            high_availability,
        )
        return self._client._send(call)

    def update(
        self,
        name: str,
        *,
        version: str | None = None,
        resources: Resources | None = None,
        alerts: Mapping[str, object] | None = None,
        clear_alerts: bool = False,
        if_match: str | int | None = None,
        high_availability: bool | None = None,
    ) -> Cluster:
        """Merge-patch the mutable fields; `if_match` is a resourceVersion (412 if stale)."""
        body = _update_body(version, resources, alerts, clear_alerts, high_availability)
        return self._client._send(self._calls.update(name, body, if_match))

    def delete(self, name: str, *, if_match: str | int | None = None) -> None:
        """Start deleting a cluster (phase Terminating); see wait_deleted()."""
        self._client._send(self._calls.delete(name, if_match))

    def connection_details(self, name: str) -> ConnectionDetails:
        """API server endpoint and CA; ServiceUnavailable until the cluster is Running."""
        return self._client._send(self._calls.connection_details(name))

    def kubeconfig(self, name: str) -> KubeconfigDocument:
        """A kubeconfig for the cluster; its user runs `kupe auth get-token` (no secret inside)."""
        return self._calls.kubeconfig(name, self.connection_details(name))

    def credentials(self, name: str, *, expiration_seconds: int | None = None) -> ClusterCredential:
        """A short-lived token for this cluster only, with the caller's role."""
        return self._client._send(self._calls.credentials(name, expiration_seconds))

    def modify(self, name: str, change: Change, *, attempts: int = 5) -> Cluster:
        """Read, apply `change` (None: nothing to do), write with If-Match; re-read on 412."""
        return self._client._modify(
            lambda: self._calls.get(name),
            change,
            lambda cluster, update: self._calls.update(
                name, _patch_body(update), cluster.resource_version
            ),
            attempts,
        )

    def events(self, name: str) -> Timeline:
        """The cluster's timeline: Created, Running, Upgraded, Failed, Deleted..."""
        return self._client._send(self._calls.events(name))

    def watch(
        self,
        name: str | None = None,
        *,
        resource_version: str | None = None,
        bookmarks: bool = False,
    ) -> Iterator[WatchEvent]:
        """The tenant's clusters (or one) as they change: first the current state as ADDED
        events (or every change after `resource_version`), then each change; reconnects by
        itself; raises Expired for a resourceVersion the server no longer has."""
        return watch_sync(
            self._client, self._calls.path(name), resource_version, bookmarks=bookmarks
        )

    def wait(
        self,
        name: str,
        phase: ClusterPhase = "Running",
        *,
        timeout: float = 900.0,
        poll_interval: float = 1.0,
        on_change: OnChange | None = None,
    ) -> Cluster:
        """Wait until the cluster is in `phase` (by watch when the server offers it, else by
        polling); raises ClusterFailed or WaitTimeout."""
        client = self._client
        deadline = client._monotonic() + timeout
        cluster = self.get(name)
        told = False  # on_change already saw `cluster`
        if streams(client._http, client._watch) and not reached(cluster, phase):
            if on_change is not None:
                on_change(cluster)
                told = True
            check_hope(cluster, phase)
            try:
                found = wait_by_watch(
                    client, self._calls.path(name), cluster, phase, timeout, on_change
                )
                assert found is not None
                return found
            except WatchUnavailable:
                pass  # an older server: poll
        while True:
            if on_change is not None and not told:
                on_change(cluster)
            told = False
            if reached(cluster, phase):
                return cluster
            check_hope(cluster, phase)
            while True:
                remaining = deadline - client._monotonic()
                if remaining <= 0:
                    raise timeout_error(name, phase, timeout, cluster)
                client._sleep(min(poll_interval, remaining))
                # If-None-Match: an unchanged cluster costs a bodiless 304.
                newer = client._send(self._calls.get_if_changed(name, cluster.resource_version))
                if newer is not None:
                    cluster = newer
                    break

    def wait_deleted(
        self,
        name: str,
        *,
        timeout: float = 900.0,
        poll_interval: float = 1.0,
        on_change: OnChange | None = None,
    ) -> None:
        """Wait until the cluster is gone (404), by watch when the server offers it, else by
        polling; raises WaitTimeout."""
        client = self._client
        deadline = client._monotonic() + timeout
        cluster: Cluster | None = None
        if streams(client._http, client._watch):
            try:
                cluster = self.get(name)
            except NotFound:
                return
            if on_change is not None:
                on_change(cluster)
            try:
                wait_by_watch(client, self._calls.path(name), cluster, None, timeout, on_change)
                return
            except WatchUnavailable:
                pass  # an older server: poll (and report the cluster again when it changes)
        while True:
            try:
                if cluster is None:
                    newer: Cluster | None = self.get(name)
                else:
                    newer = client._send(self._calls.get_if_changed(name, cluster.resource_version))
            except NotFound:
                return
            if newer is not None:
                cluster = newer
                if on_change is not None:
                    on_change(cluster)
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise timeout_error(name, "deleted", timeout, cluster)
            client._sleep(min(poll_interval, remaining))


class AsyncClusters:
    """`async_client.clusters`: the tenant's clusters."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._calls = _Calls(client._core)

    async def list(self, *, page_size: int | None = None) -> list[Cluster]:
        """Every cluster, sorted by name; `page_size` fetches them in pages of that size."""
        return await self._client._send_all(lambda token: self._calls.list(page_size, token))

    async def get(self, name: str) -> Cluster:
        """One cluster by name."""
        return await self._client._send(self._calls.get(name))

    async def create(
        self,
        name: str,
        *,
        display_name: str,
        type: ClusterType,
        version: str | None = None,
        resources: Resources | None = None,
        alerts: Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
        high_availability: bool | None = None,
    ) -> Cluster:
        """Create a cluster (phase Pending); an Idempotency-Key is generated unless given."""
        call = self._calls.create(
            name,
            display_name,
            type,
            version,
            resources,
            alerts,
            idempotency_key,
            high_availability,
        )
        return await self._client._send(call)

    async def update(
        self,
        name: str,
        *,
        version: str | None = None,
        resources: Resources | None = None,
        alerts: Mapping[str, object] | None = None,
        clear_alerts: bool = False,
        if_match: str | int | None = None,
        high_availability: bool | None = None,
    ) -> Cluster:
        """Merge-patch the mutable fields; `if_match` is a resourceVersion (412 if stale)."""
        body = _update_body(version, resources, alerts, clear_alerts, high_availability)
        return await self._client._send(self._calls.update(name, body, if_match))

    async def delete(self, name: str, *, if_match: str | int | None = None) -> None:
        """Start deleting a cluster (phase Terminating); see wait_deleted()."""
        await self._client._send(self._calls.delete(name, if_match))

    async def connection_details(self, name: str) -> ConnectionDetails:
        """API server endpoint and CA; ServiceUnavailable until the cluster is Running."""
        return await self._client._send(self._calls.connection_details(name))

    async def kubeconfig(self, name: str) -> KubeconfigDocument:
        """A kubeconfig for the cluster; its user runs `kupe auth get-token` (no secret inside)."""
        return self._calls.kubeconfig(name, await self.connection_details(name))

    async def credentials(
        self, name: str, *, expiration_seconds: int | None = None
    ) -> ClusterCredential:
        """A short-lived token for this cluster only, with the caller's role."""
        return await self._client._send(self._calls.credentials(name, expiration_seconds))

    async def modify(self, name: str, change: Change, *, attempts: int = 5) -> Cluster:
        """Read, apply `change` (None: nothing to do), write with If-Match; re-read on 412."""
        return await self._client._modify(
            lambda: self._calls.get(name),
            change,
            lambda cluster, update: self._calls.update(
                name, _patch_body(update), cluster.resource_version
            ),
            attempts,
        )

    async def events(self, name: str) -> Timeline:
        """The cluster's timeline: Created, Running, Upgraded, Failed, Deleted..."""
        return await self._client._send(self._calls.events(name))

    def watch(
        self,
        name: str | None = None,
        *,
        resource_version: str | None = None,
        bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent]:
        """The tenant's clusters (or one) as they change (see Clusters.watch)."""
        return watch_async(
            self._client, self._calls.path(name), resource_version, bookmarks=bookmarks
        )

    async def wait(
        self,
        name: str,
        phase: ClusterPhase = "Running",
        *,
        # The same signature as the sync client; the deadline also bounds the polling itself.
        timeout: float = 900.0,  # noqa: ASYNC109
        poll_interval: float = 1.0,
        on_change: OnChange | None = None,
    ) -> Cluster:
        """Wait until the cluster is in `phase` (by watch when the server offers it, else by
        polling); raises ClusterFailed or WaitTimeout."""
        client = self._client
        deadline = client._monotonic() + timeout
        cluster = await self.get(name)
        told = False  # on_change already saw `cluster`
        if streams(client._http, client._watch) and not reached(cluster, phase):
            if on_change is not None:
                on_change(cluster)
                told = True
            check_hope(cluster, phase)
            try:
                found = await async_wait_by_watch(
                    client, self._calls.path(name), cluster, phase, timeout, on_change
                )
                assert found is not None
                return found
            except WatchUnavailable:
                pass  # an older server: poll
        while True:
            if on_change is not None and not told:
                on_change(cluster)
            told = False
            if reached(cluster, phase):
                return cluster
            check_hope(cluster, phase)
            while True:
                remaining = deadline - client._monotonic()
                if remaining <= 0:
                    raise timeout_error(name, phase, timeout, cluster)
                await client._sleep(min(poll_interval, remaining))
                # If-None-Match: an unchanged cluster costs a bodiless 304.
                call = self._calls.get_if_changed(name, cluster.resource_version)
                newer = await client._send(call)
                if newer is not None:
                    cluster = newer
                    break

    async def wait_deleted(
        self,
        name: str,
        *,
        timeout: float = 900.0,  # noqa: ASYNC109
        poll_interval: float = 1.0,
        on_change: OnChange | None = None,
    ) -> None:
        """Wait until the cluster is gone (404), by watch when the server offers it, else by
        polling; raises WaitTimeout."""
        client = self._client
        deadline = client._monotonic() + timeout
        cluster: Cluster | None = None
        if streams(client._http, client._watch):
            try:
                cluster = await self.get(name)
            except NotFound:
                return
            if on_change is not None:
                on_change(cluster)
            try:
                await async_wait_by_watch(
                    client, self._calls.path(name), cluster, None, timeout, on_change
                )
                return
            except WatchUnavailable:
                pass  # an older server: poll (and report the cluster again when it changes)
        while True:
            try:
                if cluster is None:
                    newer: Cluster | None = await self.get(name)
                else:
                    call = self._calls.get_if_changed(name, cluster.resource_version)
                    newer = await client._send(call)
            except NotFound:
                return
            if newer is not None:
                cluster = newer
                if on_change is not None:
                    on_change(cluster)
            remaining = deadline - client._monotonic()
            if remaining <= 0:
                raise timeout_error(name, "deleted", timeout, cluster)
            await client._sleep(min(poll_interval, remaining))
