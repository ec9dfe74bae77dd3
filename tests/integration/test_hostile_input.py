"""Hostile input gets a clear 4xx with the Kupe error body, stores nothing, and is not logged raw.

Extends test_clusters_validation.py (bad fields, 413 by length and by stream, 64 KiB / 40-deep
alerts, non-UTF-8 body, a Cyrillic look-alike and `../etc` as cluster names) with the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.harness import Kupe, TenantCreds
from tests.support.logs import captured_logs

MARKER = "h0st1le"  # in every hostile payload, so the logs can be searched for it


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[StringIO]:
    with captured_logs(tmp_path) as stream:
        yield stream


def assert_clean_4xx(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or range(400, 500)), response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) <= {"error", "code", "field"}
    assert body["error"]
    assert body["code"]
    assert "Traceback" not in response.text
    assert ".py" not in response.text
    return body


async def assert_nothing_stored(kupe: Kupe, acme: TenantCreds) -> None:
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert listed.json() == {"items": []}
    members = await kupe.client.get(acme.url("/members"), headers=acme.headers)
    assert [m["email"] for m in members.json()["items"]] == ["admin@acme.example.com"]


def assert_not_logged_raw(logs: StringIO) -> None:
    # Kupe's own lines are JSON (third-party debug output shares the stream in plain text);
    # each is one JSON document, so nothing hostile split or forged a line.
    kupe_lines = [line for line in logs.getvalue().splitlines() if line.startswith("{")]
    assert kupe_lines
    for line in kupe_lines:
        json.loads(line)
        assert MARKER not in line, line


def cluster(name: str = "web", **fields: Any) -> dict[str, Any]:
    return {"name": name, "displayName": "Web", "type": "shared", **fields}


async def post_raw(kupe: Kupe, acme: TenantCreds, path: str, content: bytes) -> httpx.Response:
    headers = {**acme.headers, "Content-Type": "application/json"}
    return await kupe.client.post(acme.url(path), content=content, headers=headers)


# --- bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
async def test_deeply_nested_json_is_400(kupe: Kupe, logs: StringIO, depth: int) -> None:
    acme = await kupe.tenant()
    nested = b"[" * depth + f'"{MARKER}"'.encode() + b"]" * depth
    body = b'{"name": "web", "displayName": "Web", "type": "shared", "alerts": {"a": ' + nested
    response = await post_raw(kupe, acme, "/clusters", body + b"}}")
    assert_clean_4xx(response, 400)  # under the body limit at every depth: refused by depth
    await assert_nothing_stored(kupe, acme)
    assert_not_logged_raw(logs)


async def test_wide_alerts_just_under_the_body_limit_are_400(kupe: Kupe, logs: StringIO) -> None:
    acme = await kupe.tenant()
    alerts = {f"{MARKER}{i}": i for i in range(40_000)}
    response = await kupe.create_cluster(acme, "web", alerts=alerts)
    body = assert_clean_4xx(response, 400)
    assert body["field"] == "alerts"
    await assert_nothing_stored(kupe, acme)
    assert_not_logged_raw(logs)


async def test_oversized_patch_is_413_and_changes_nothing(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    big = json.dumps({"alerts": {"x": "y" * (1024 * 1024 + 1)}}).encode()
    response = await kupe.client.patch(
        acme.url("/clusters/web"),
        content=big,
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert_clean_4xx(response, 413)
    current = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert current.json()["resourceVersion"] == created.json()["resourceVersion"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "web", "displayName": "Web\xc3\x28", "type": "shared"}',  # bad UTF-8 sequence
        b'{"name": "web", "displayName": "\xed\xa0\x80", "type": "shared"}',  # UTF-16 surrogate
        b'\xef\xbb\xbf{"name": "web", "displayName": "Web", "type": "shared"}',  # BOM
        b'{"name": "web", "displayName": "\\ud800", "type": "shared"}',  # lone surrogate escape
    ],
)
async def test_odd_encodings_are_400_malformed_json(kupe: Kupe, body: bytes) -> None:
    acme = await kupe.tenant()
    response = await post_raw(kupe, acme, "/clusters", body)
    assert assert_clean_4xx(response, 400)["code"] == "MALFORMED_JSON"
    await assert_nothing_stored(kupe, acme)


async def test_a_duplicate_key_takes_its_last_value_as_json_parsers_do(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    body = b'{"name": "web", "name": "web2", "displayName": "Web", "type": "shared"}'
    response = await post_raw(kupe, acme, "/clusters", body)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "web2"
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["web2"]


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "w\x00b"},
        {"displayName": f"{MARKER}\x00"},
        {"alerts": {"k": f"{MARKER}\x00"}},
        {"alerts": {f"{MARKER}\x00": 1}},
        {"version": "1.33\x00"},
        {"resources": {"memory": "2Gi\x00"}},
    ],
)
async def test_nul_bytes_are_400(kupe: Kupe, logs: StringIO, fields: dict[str, Any]) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(
        acme.url("/clusters"), json=cluster(**fields), headers=acme.headers
    )
    assert_clean_4xx(response, 400)
    await assert_nothing_stored(kupe, acme)
    assert_not_logged_raw(logs)


async def test_nul_bytes_in_a_patch_are_400_and_change_nothing(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    response = await kupe.client.patch(
        acme.url("/clusters/web"), json={"alerts": {"a": "\x00"}}, headers=acme.headers
    )
    assert_clean_4xx(response, 400)
    current = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert current.json()["resourceVersion"] == created.json()["resourceVersion"]


# --- names, emails and paths -------------------------------------------------------------

HOSTILE_NAMES = [
    "ｗｅｂ",  # fullwidth
    "we\u200bb",  # zero-width space
    "web\u0301",  # combining accent
    "wеb",  # Cyrillic e
    "ᴡeb",  # small capital
    "../../etc/passwd",
    "web/../admin",
    "%2e%2e%2f",
    "web'; DROP TABLE clusters;--",
    "' OR '1'='1",
    "web\nX-Injected: 1",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_cluster_names_are_400(kupe: Kupe, name: str) -> None:
    acme = await kupe.tenant()
    body = assert_clean_4xx(await kupe.create_cluster(acme, name), 400)
    assert body["field"] == "name"
    await assert_nothing_stored(kupe, acme)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_names_in_paths_are_404_or_400(kupe: Kupe, name: str) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    path = acme.url(f"/clusters/{quote(name, safe='')}")
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"alerts": {}}} if method == "PATCH" else {}
        response = await kupe.client.request(method, path, headers=acme.headers, **kwargs)
        assert_clean_4xx(response, 400, 404)
    # The real cluster is untouched, and no tenant-name probing through the tenant segment.
    assert (await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)).json()[
        "generation"
    ] == 1
    other = f"/api/v1/tenants/{quote(name, safe='')}/clusters"
    assert_clean_4xx(await kupe.client.get(other, headers=acme.headers), 403, 404)


@pytest.mark.parametrize(
    "email",
    [
        "../../etc/passwd@example.com",
        "alice@example.com/../../admin",
        "alice@example.com\x00",
        "' OR 1=1 --",
        "alice@example.com\r\nBcc: x@y.z",
        "a" * 400 + "@example.com",
    ],
)
async def test_hostile_member_emails_are_400(kupe: Kupe, email: str) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(
        acme.url("/members"), json={"email": email, "role": "readonly"}, headers=acme.headers
    )
    assert_clean_4xx(response, 400)
    await assert_nothing_stored(kupe, acme)
    probe = await kupe.client.get(
        acme.url(f"/members/{quote(email, safe='')}"), headers=acme.headers
    )
    assert_clean_4xx(probe, 400, 404)


@pytest.mark.parametrize(
    "token",
    ["' OR 1=1--", "eyJ9" * 1000, "..%2F..%2F", "\u202etoken", "W10="],
)
async def test_hostile_continue_tokens_are_400(kupe: Kupe, token: str) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.get(
        acme.url("/clusters"), params={"limit": 1, "continue": token}, headers=acme.headers
    )
    body = assert_clean_4xx(response, 400)
    assert body["field"] == "continue"


# --- headers -----------------------------------------------------------------------------


# In-process there is no HTTP parser to cap header sizes (the real server's 431 is tested in
# tests/integration/test_edge_limits.py, ADR 0007): what is left is each header's meaning.
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Authorization": "Bearer " + "k" * 60_000}, 401),
        ({"Authorization": "Bearer kupe_abcdefgh_" + "A" * 60_000}, 401),
        ({"If-Match": '"1", ' * 10_000}, 201),  # a create has nothing to match: ignored
        ({"If-None-Match": "9" * 50_000}, 201),
        ({"X-Request-Id": MARKER * 10_000}, 201),  # replaced by a request id of Kupe's own
        ({"Idempotency-Key": MARKER * 1_000}, 400),  # at most 255 characters
        ({"Authorization": "Bearer \x00kupe"}, 401),
    ],
)
async def test_very_long_or_odd_headers_are_a_clean_answer(
    kupe: Kupe, logs: StringIO, headers: dict[str, str], status: int
) -> None:
    acme = await kupe.tenant()
    merged = {**acme.headers, **headers}
    response = await kupe.client.post(acme.url("/clusters"), json=cluster(), headers=merged)
    assert response.status_code == status, response.text
    if response.status_code != 201:
        assert_clean_4xx(response)
        await assert_nothing_stored(kupe, acme)
    assert MARKER not in response.headers.get("x-request-id", "")
    assert_not_logged_raw(logs)


async def test_non_latin1_header_bytes_are_a_clean_answer(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    for value in (b"\xff\xfe\xfd", "ключ".encode(), b"kupe_\x80\x81"):
        headers = [
            (b"authorization", acme.headers["Authorization"].encode()),
            (b"if-match", value),
            (b"content-type", b"application/json"),
        ]
        response = await kupe.client.patch(
            acme.url("/clusters/web"), json={"alerts": {}}, headers=httpx.Headers(headers)
        )
        assert_clean_4xx(response, 400)
        bad_auth = [(b"authorization", b"Bearer " + value)]
        refused = await kupe.client.get(acme.url("/clusters"), headers=httpx.Headers(bad_auth))
        assert_clean_4xx(refused, 401)
    current = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert current.json()["resourceVersion"] == created.json()["resourceVersion"]


async def test_sqlish_query_parameters_are_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for params in ({"limit": "1; DROP TABLE clusters"}, {"limit": "-1"}, {"limit": "10000"}):
        response = await kupe.client.get(acme.url("/clusters"), params=params, headers=acme.headers)
        assert_clean_4xx(response, 400)
    response = await kupe.client.get(
        acme.url("/clusters/web/kubeconfig"),
        params={"format": "yaml' OR '1'='1"},
        headers=acme.headers,
    )
    assert_clean_4xx(response, 400, 404)
