"""Limits at the edge (issue 12, items 1-4 and 8): what a client may send before the app sees
it, and the Kupe error body for everything the server refuses, over raw sockets to a real
`kupe serve` and in-process on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.harness import Kupe, TenantCreds
from tests.support.server_process import KupeProcess, process_group

pytestmark = pytest.mark.slow
KIB = 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KupeProcess]:
    """One real server, its read deadline short so slow clients time out quickly."""
    with process_group(tmp_path_factory.mktemp("edge")) as group:
        process = group.serve(KUPE_HTTP_READ_TIMEOUT_SECONDS="1").wait_ready()
        yield process
        process.stop()


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, then read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def parse(response: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    headers = {name.lower(): value for name, value in headers.items()}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_kupe_error(response: bytes, status: int, code: str) -> dict[str, Any]:
    got, headers, body = parse(response)
    assert got == status, response[:300]
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"]
    assert body["code"] == code
    assert body["error"]
    assert set(body) <= {"error", "code", "field"}
    return body


def request_with(*headers: bytes, target: bytes = b"/healthz") -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


# --- item 1: header size, count, request line, time ---------------------------------------


def test_a_header_over_16_kib_is_431(server: KupeProcess) -> None:
    response = exchange(server.port, request_with(b"X-Big: " + b"a" * (17 * KIB)))
    assert_kupe_error(response, 431, "HEADERS_TOO_LARGE")


def test_headers_over_64_kib_in_all_are_431(server: KupeProcess) -> None:
    many = [b"X-Part-%d: " % i + b"b" * (12 * KIB) for i in range(6)]
    assert_kupe_error(exchange(server.port, request_with(*many)), 431, "HEADERS_TOO_LARGE")


def test_more_than_100_headers_are_431(server: KupeProcess) -> None:
    many = [b"X-H-%d: 1" % i for i in range(101)]
    assert_kupe_error(exchange(server.port, request_with(*many)), 431, "HEADERS_TOO_LARGE")


def test_a_request_line_over_8_kib_is_414(server: KupeProcess) -> None:
    response = exchange(server.port, request_with(target=b"/" + b"a" * (9 * KIB)))
    assert_kupe_error(response, 414, "URI_TOO_LONG")


def test_large_but_legal_headers_still_work(server: KupeProcess) -> None:
    legal = [b"X-Part-%d: " % i + b"c" * (15 * KIB) for i in range(3)]
    status, _, body = parse(exchange(server.port, request_with(b"Connection: close", *legal)))
    assert (status, body) == (200, {"status": "ok"})


def test_a_60_mb_header_neither_stalls_the_server_nor_grows_it(server: KupeProcess) -> None:
    before = rss_mb(server.pid)
    answers: list[bytes] = []

    def attack() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
                for _ in range(60):
                    sock.sendall(b"h" * (1024 * KIB))
            except OSError:
                pass  # the server may stop reading: that is the point
            try:
                answers.append(sock.recv(4096))
            except OSError:
                answers.append(b"")

    attackers = [threading.Thread(target=attack) for _ in range(4)]
    for thread in attackers:
        thread.start()
    slowest = 0.0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while any(thread.is_alive() for thread in attackers):
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    for thread in attackers:
        thread.join()
    assert slowest < 1.0, f"/healthz took {slowest:.2f}s while the headers streamed"
    assert rss_mb(server.pid) - before < 30
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 431") for answer in answers)


def test_a_client_that_stalls_in_its_headers_gets_408(server: KupeProcess) -> None:
    started = time.monotonic()
    response = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ab")
    assert_kupe_error(response, 408, "REQUEST_TIMEOUT")
    assert time.monotonic() - started < 5


def test_a_connection_that_never_sends_is_closed(server: KupeProcess) -> None:
    started = time.monotonic()
    assert exchange(server.port, b"") == b""
    assert time.monotonic() - started < 5


# --- item 4: HTTP-level errors carry the Kupe body ----------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /api/v1/plans HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_malformed_http_is_400_with_the_kupe_body(server: KupeProcess, raw: bytes) -> None:
    assert_kupe_error(exchange(server.port, raw), 400, "MALFORMED_REQUEST")


# --- items 2 and 3: nesting and non-finite numbers ----------------------------------------


def nested_alerts(depth: int, kind: str) -> bytes:
    if kind == "objects":
        return b'"alerts":' + b'{"a":' * depth + b"1" + b"}" * depth
    return b'"alerts":{"a":' + b"[" * depth + b"1" + b"]" * depth + b"}"


async def send(kupe: Kupe, acme: TenantCreds, method: str, path: str, body: bytes) -> Any:
    headers = {**acme.headers, "Content-Type": "application/json"}
    return await kupe.client.request(method, acme.url(path), content=body, headers=headers)


@pytest.mark.parametrize(("depth", "kind"), [(34, "objects"), (330, "objects"), (500, "arrays")])
async def test_deep_nesting_is_400_naming_the_field(kupe: Kupe, depth: int, kind: str) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    assert created.status_code == 201
    body = b'{"name":"deep","displayName":"Deep","type":"shared",' + nested_alerts(depth, kind)
    response = await send(kupe, acme, "POST", "/clusters", body + b"}")
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "alerts"
    assert "32 levels" in response.json()["error"]
    patch = b"{" + nested_alerts(depth, kind) + b"}"
    patched = await send(kupe, acme, "PATCH", "/clusters/web", patch)
    assert patched.status_code == 400, patched.text
    assert patched.json()["field"] == "alerts"
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["web"]
    web = listed.json()["items"][0]
    assert (web["resourceVersion"], web.get("alerts")) == (created.json()["resourceVersion"], None)


async def test_nesting_up_to_the_limit_is_accepted(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    alerts = {"a": 1}
    for _ in range(30):
        alerts = {"a": alerts}
    response = await kupe.create_cluster(acme, "web", alerts=alerts)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
async def test_non_finite_numbers_are_400(kupe: Kupe, number: bytes) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    body = b'{"name":"nan","displayName":"N","type":"shared","alerts":{"x":' + number + b"}}"
    response = await send(kupe, acme, "POST", "/clusters", body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "MALFORMED_JSON"
    assert "finite" in response.json()["error"]
    patch = b'{"alerts":{"x":[' + number + b"]}}"
    assert (await send(kupe, acme, "PATCH", "/clusters/web", patch)).status_code == 400
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["resourceVersion"] for c in listed.json()["items"]] == [
        created.json()["resourceVersion"]
    ]


# --- item 8: duplicate Authorization, forwarding headers ----------------------------------


async def test_duplicate_authorization_headers_are_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    other = await kupe.tenant("other")
    for keys in ([acme.key, other.key], [acme.key, acme.key], ["nonsense", acme.key]):
        headers = httpx.Headers([("authorization", f"Bearer {key}") for key in keys])
        response = await kupe.client.get(acme.url("/clusters"), headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "INVALID_HEADER"


def _backoff_seen(url: str, forwarded_for: bool) -> bool:
    """Fail authentication three times, each claiming another address; 429 back-off?"""
    with httpx.Client(base_url=url, timeout=10) as client:
        statuses = []
        for i in range(4):
            headers = {"Authorization": "Bearer kupe_aaaaaaaa_" + "x" * 43}
            if forwarded_for:
                headers["X-Forwarded-For"] = f"203.0.113.{i + 1}"
            statuses.append(client.get("/api/v1/tenants/default/clusters", headers=headers))
        return any(response.status_code == 429 for response in statuses)


@pytest.mark.parametrize(("trusted", "believed"), [(None, False), ("127.0.0.0/8", True)])
def test_forwarding_headers_count_only_from_trusted_proxies(
    tmp_path: Path, database_url: str, trusted: str | None, believed: bool
) -> None:
    env = {"KUPE_DATABASE_URL": database_url, "KUPE_AUTH_FAILURE_ALLOWANCE": "2"}
    if trusted is not None:
        env["KUPE_TRUSTED_PROXIES"] = trusted
    with process_group(tmp_path, env) as group:
        server = group.serve().wait_ready()
        # From loopback, untrusted: every claimed address is really 127.0.0.1 and backs off.
        assert _backoff_seen(server.url, forwarded_for=True) is not believed
        server.stop()
