"""What the local provider keeps on disk, so that any Kupe process sharing the workdir (or one
restarted after a crash) knows every cluster without asking memory.

Layout of the workdir (0700): `clusters/kupe-<id>/` is kwokctl's own directory of a cluster
(PKI, etcd data, pid files, logs); `kupe/<id>/` is ours (the record, the kwokctl configuration
and the token webhook's kubeconfig); `locks/` holds flock files: one per cluster, held while a
call changes it, and `workdir.lock`, held while capacity and ports are handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_ID: Final = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?\Z")
_LOCK_POLL_SECONDS: Final = 0.05
PORT_NAMES: Final = (
    "apiserver",
    "etcd",
    "etcd_peer",
    "kwok_controller",
    "controller_manager",
    "scheduler",
)


class InvalidClusterId(ValueError):
    """A cluster id that cannot name a directory and a kwokctl cluster."""


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster's processes."""

    apiserver: int
    etcd: int
    etcd_peer: int
    kwok_controller: int
    controller_manager: int
    scheduler: int

    def all(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in PORT_NAMES)


@dataclass(frozen=True)
class ClusterRecord:
    """One cluster as the provider recorded it."""

    id: str
    tenant: str
    name: str
    # The minor its binaries are of; changes only once an upgrade has finished.
    minor: str
    ports: Ports
    # kwokctl created it and its API server served once; until then a crash means start over.
    created: bool = False
    upgrade_target: str | None = None
    deleting: bool = False
    # What the nodes were last sized to; reported while the API server does not answer.
    cpu_millis: int = 0
    memory_bytes: int = 0
    storage_bytes: int = 0
    # The API server's `gitVersion` when last seen.
    kubernetes_version: str = ""
    # The alerts document last applied (canonical JSON, "" for none).
    alerts: str = ""

    def replace(self, **changes: object) -> ClusterRecord:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClusterRecord:
        raw = json.loads(text)
        raw["ports"] = Ports(**raw["ports"])
        return cls(**raw)


@dataclass(frozen=True)
class Reservation:
    """The outcome of asking for room: a record with its ports, or why there is none."""

    record: ClusterRecord | None
    waiting: str = ""


def check_id(cluster_id: str) -> str:
    if not _ID.match(cluster_id):
        raise InvalidClusterId(f"cluster id {cluster_id!r} cannot name a local cluster")
    return cluster_id


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by the owner only."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


class Workdir:
    """The local provider's directory tree; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clusters = root / "clusters"
        self.records = root / "kupe"
        self.locks = root / "locks"
        for directory in (root, self.clusters, self.records, self.locks):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def cluster_name(cluster_id: str) -> str:
        """The kwokctl name of a cluster."""
        return f"kupe-{check_id(cluster_id)}"

    def cluster_dir(self, cluster_id: str) -> Path:
        """kwokctl's directory of the cluster."""
        return self.clusters / self.cluster_name(cluster_id)

    def own_dir(self, cluster_id: str) -> Path:
        return self.records / check_id(cluster_id)

    # -- records -----------------------------------------------------------------------------

    def load(self, cluster_id: str) -> ClusterRecord | None:
        try:
            text = (self.own_dir(cluster_id) / "record.json").read_text()
        except FileNotFoundError:
            return None
        return ClusterRecord.from_json(text)

    def save(self, record: ClusterRecord) -> None:
        directory = self.own_dir(record.id)
        directory.mkdir(exist_ok=True, mode=0o700)
        write_private(directory / "record.json", record.to_json())

    def forget(self, cluster_id: str) -> None:
        """Remove every file of the cluster (kwokctl's and ours)."""
        shutil.rmtree(self.cluster_dir(cluster_id), ignore_errors=True)
        shutil.rmtree(self.own_dir(cluster_id), ignore_errors=True)

    def all_records(self) -> list[ClusterRecord]:
        found: list[ClusterRecord] = []
        for path in sorted(self.records.glob("*/record.json")):
            with contextlib.suppress(FileNotFoundError, ValueError, TypeError, KeyError):
                found.append(ClusterRecord.from_json(path.read_text()))
        return found

    # -- locks -------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def cluster_lock(self, cluster_id: str) -> AsyncIterator[None]:
        """Hold the cluster's lock (other calls on it, here or in other processes, wait)."""
        async with _flock(self.locks / f"{check_id(cluster_id)}.lock"):
            yield

    def is_busy(self, cluster_id: str) -> bool:
        """Whether some call, in any process, is changing the cluster right now."""
        path = self.locks / f"{check_id(cluster_id)}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def drop_lock(self, cluster_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.locks / f"{check_id(cluster_id)}.lock").unlink()

    # -- capacity and ports ------------------------------------------------------------------

    async def reserve(
        self,
        proposed: ClusterRecord,
        *,
        max_clusters: int,
        port_range: tuple[int, int],
    ) -> Reservation:
        """Record `proposed` with ports of its own, if fewer than `max_clusters` exist.

        Under the workdir's lock, so concurrent callers in several processes never exceed the
        limit nor get the same port; ports recorded by any cluster, running or stopped, are
        never handed out again while it exists."""
        async with _flock(self.locks / "workdir.lock"):
            existing = self.all_records()
            if any(record.id == proposed.id for record in existing):
                record = self.load(proposed.id)
                return Reservation(record)
            if len(existing) >= max_clusters:
                return Reservation(
                    None,
                    f"waiting for capacity: {len(existing)} of {max_clusters} local clusters "
                    "are running",
                )
            used = {port for record in existing for port in record.ports.all()}
            ports = Ports(*_free_ports(len(PORT_NAMES), used, port_range))
            record = proposed.replace(ports=ports)
            self.save(record)
            return Reservation(record)


def _free_ports(count: int, used: set[int], port_range: tuple[int, int]) -> list[int]:
    """`count` ports nothing listens on, scanning from a random point of the range: another
    Kupe (or anything else) on this machine that probes the same range at the same moment
    then almost never picks the same port before either binds it."""
    low, high = port_range
    size = high - low + 1
    start = secrets.randbelow(size)
    chosen: list[int] = []
    for offset in range(size):
        port = low + (start + offset) % size
        if port in used or not _bindable(port):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise OSError(f"no {count} free loopback ports left in {low}-{high}")


def _bindable(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (the probe binds loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.asynccontextmanager
async def _flock(path: Path) -> AsyncIterator[None]:
    """An exclusive flock, waited for without blocking the event loop (polled, so a
    cancelled waiter never acquires it later in a thread)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(_LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(fd)


def restrict(directory: Path) -> None:
    """Make a tree the owner's only (dirs 0700, files 0600, executables 0700): kwokctl writes
    its PKI, admin key included, world-readable. Symlinks (to the binary cache) are left as
    they are, since chmod would follow them."""
    for path in (directory, *directory.rglob("*")):
        with contextlib.suppress(FileNotFoundError):
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            private = 0o700 if path.is_dir() or mode & 0o100 else 0o600
            if mode & 0o777 != private:
                os.chmod(path, private)
