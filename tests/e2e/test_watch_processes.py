"""Watches against real `kupe serve` processes: a client resumes across a server restart with
no gap or duplicate, stopping a server with open streams does not hang, and on one PostgreSQL
an event committed through replica A reaches a watcher on replica B within a second."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kupe.sdk import Client, WatchEvent
from tests.conftest import TEMPLATE_DB
from tests.support.postgres import PostgresHandle
from tests.support.server_process import Api, process_group, wait_for

pytestmark = pytest.mark.slow


class Watcher:
    """`client.clusters.watch()` read in a thread until `done(event)`."""

    def __init__(
        self, client: Client, done: Callable[[WatchEvent], bool], resource_version: str | None
    ) -> None:
        self.events: list[tuple[float, WatchEvent]] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(client, done, resource_version), daemon=True
        )
        self._thread.start()

    def _run(
        self, client: Client, done: Callable[[WatchEvent], bool], resource_version: str | None
    ) -> None:
        try:
            for event in client.clusters.watch(resource_version=resource_version):
                self.events.append((time.monotonic(), event))
                if done(event):
                    return
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float) -> list[WatchEvent]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the watch never saw the end"
        assert self.error is None, self.error
        return [event for _, event in self.events]


def deleted(name: str) -> Callable[[WatchEvent], bool]:
    return lambda event: (
        event.type == "DELETED" and event.cluster is not None and (event.cluster.name == name)
    )


def test_a_watch_resumes_across_a_server_restart(tmp_path: Path) -> None:
    with process_group(tmp_path) as group:
        server = group.serve().wait_ready()
        key = group.api_key()
        api = Api(server.url, key)
        with Client(server.url, api_key=key, tenant="default") as client:
            watcher = Watcher(client, deleted("web-b"), "0")
            assert api.create("web-a").status_code == 201
            wait_for("web-a Running", lambda: api.all_at("Running", ["web-a"]), timeout=60)
            wait_for("events", lambda: len(watcher.events) >= 3)
            started = time.monotonic()
            assert server.stop() is not None
            assert time.monotonic() - started < 10, "stopping hung on an open watch stream"
            server.restart().wait_ready()
            assert api.create("web-b").status_code == 201
            wait_for("web-b Running", lambda: api.all_at("Running", ["web-b"]), timeout=60)
            assert api.delete("web-b").status_code in (200, 202, 204)
            seen = watcher.join(90)
            # Everything the outbox holds, from a fresh watch, up to the same version.
            end = int(seen[-1].resource_version)
            replay = Watcher(client, lambda e: int(e.resource_version) >= end, "0").join(30)
    versions = [int(event.resource_version) for event in seen]
    assert versions == sorted(set(versions)), "a duplicate or a reordering"
    assert versions == [int(event.resource_version) for event in replay], "a gap"
    names = [event.cluster.name for event in seen if event.cluster is not None]
    assert "web-a" in names
    assert "web-b" in names


@pytest.fixture
def postgres_url(postgres: PostgresHandle) -> Iterator[str]:
    name = f"w_{uuid.uuid4().hex[:16]}"
    yield postgres.create_database(name, template=TEMPLATE_DB)
    postgres.drop_database(name)


def test_an_event_through_replica_a_reaches_a_watcher_on_b_within_a_second(
    tmp_path: Path, postgres_url: str
) -> None:
    with process_group(tmp_path, {"KUPE_DATABASE_URL": postgres_url}) as group:
        first, second = group.serve("first"), group.serve("second")
        first.wait_ready()
        second.wait_ready()
        key = group.api_key()
        via_first = Api(first.url, key)
        with Client(second.url, api_key=key, tenant="default") as client:
            latencies = []
            for index in range(5):
                name = f"rep-{index}"
                watcher = Watcher(
                    client,
                    lambda e, name=name: (
                        e.type == "ADDED"  # type: ignore[misc]
                        and e.cluster is not None
                        and e.cluster.name == name
                    ),
                    None,
                )
                time.sleep(0.5)  # the watch is open (its list is empty of `name`)
                sent = time.monotonic()
                assert via_first.create(name).status_code == 201
                watcher.join(10)
                latencies.append(watcher.events[-1][0] - sent)
    assert max(latencies) < 1.0, latencies
