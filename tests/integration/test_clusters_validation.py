"""Bad input gets a clear 400 (or 413/415) with the Kupe error body, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.harness import Kupe

VALID: dict[str, Any] = {"name": "web", "displayName": "Web", "type": "shared"}


def with_(**changes: Any) -> dict[str, Any]:
    body = dict(VALID)
    for key, value in changes.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


BAD_BODIES = [
    (with_(name="A"), "name"),
    (with_(name="-web"), "name"),
    (with_(name="web-"), "name"),
    (with_(name="w"), "name"),
    (with_(name="x" * 64), "name"),
    (with_(name="we_b"), "name"),
    (with_(name="../etc"), "name"),
    (with_(name="wеb"), "name"),  # Cyrillic e
    (with_(name=...), "name"),
    (with_(displayName=...), "displayName"),
    (with_(displayName=""), "displayName"),
    (with_(type="huge"), "type"),
    (with_(type=...), "type"),
    (with_(name=5), "name"),
    (with_(resources={"memory": "16"}), "resources.memory"),
    (with_(resources={"memory": "0Gi"}), "resources.memory"),
    (with_(resources={"memory": "-1Gi"}), "resources.memory"),
    (with_(resources={"storage": "100"}), "resources.storage"),
    (with_(resources={"storage": "lots"}), "resources.storage"),
    (with_(resources={"cpu": "0"}), "resources.cpu"),
    (with_(resources={"cpu": "-2"}), "resources.cpu"),
    (with_(resources={"cpu": "four"}), "resources.cpu"),
    (with_(resources={"cpu": 4}), "resources.cpu"),
    (with_(resources={"cpu": "1", "gpu": "1"}), "resources.gpu"),
    (with_(alerts=[1, 2]), "alerts"),
    (with_(unknown=True), "unknown"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_bad_bodies_are_400_naming_the_field(
    kupe: Kupe, body: dict[str, Any], field: str
) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(acme.url("/clusters"), json=body, headers=acme.headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "VALIDATION_FAILED"
    assert error["field"] == field
    assert error["error"]
    assert "Traceback" not in response.text
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert listed.json() == {"items": []}


async def test_memory_message_is_helpful(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.create_cluster(acme, "web", resources={"memory": "16"})
    assert response.json() == {
        "error": "memory must carry a unit, e.g. 16Gi",
        "code": "VALIDATION_FAILED",
        "field": "resources.memory",
    }


@pytest.mark.parametrize("cpu", ["4", "1.5", "500m", "0.25"])
async def test_good_quantities_are_echoed_as_written(kupe: Kupe, cpu: str) -> None:
    acme = await kupe.tenant()
    response = await kupe.create_cluster(acme, "web", resources={"cpu": cpu, "memory": "1.5Gi"})
    assert response.status_code == 201, response.text
    assert response.json()["resources"]["cpu"] == cpu
    assert response.json()["resources"]["memory"] == "1.5Gi"


async def test_malformed_json_is_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(
        acme.url("/clusters"),
        content=b'{"name": "web",',
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED_JSON"


async def test_non_object_body_is_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for payload in (b"[]", b'"web"', b"null", b"42"):
        response = await kupe.client.post(
            acme.url("/clusters"),
            content=payload,
            headers={**acme.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, payload


async def test_non_utf8_body_is_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(
        acme.url("/clusters"),
        content=b'{"name": "\xff\xfe"}',
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_wrong_content_type_is_415(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(
        acme.url("/clusters"),
        content=b"name=web",
        headers={**acme.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_merge_patch_content_type_is_accepted(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    response = await kupe.client.patch(
        acme.url("/clusters/web"),
        content=b'{"alerts": {"a": 1}}',
        headers={**acme.headers, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text


async def test_body_over_1_mib_is_413(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    big = b'{"name": "web", "displayName": "' + b"x" * (1024 * 1024) + b'", "type": "shared"}'
    response = await kupe.client.post(
        acme.url("/clusters"),
        content=big,
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"

    async def chunks():  # no Content-Length: the limit is enforced while streaming
        yield b'{"name": "web", "displayName": "'
        for _ in range(40):
            yield b"x" * 32768
        yield b'", "type": "shared"}'

    streamed = await kupe.client.post(
        acme.url("/clusters"),
        content=chunks(),
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_alerts_limits(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    huge = {"k": "v" * (64 * 1024)}
    response = await kupe.create_cluster(acme, "web", alerts=huge)
    assert response.status_code == 400
    assert response.json()["field"] == "alerts"
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(40):
        node["n"] = {}
        node = node["n"]
    response = await kupe.create_cluster(acme, "web", alerts=deep)
    assert response.status_code == 400
    assert response.json()["field"] == "alerts"


@pytest.mark.parametrize(
    ("patch", "code", "field"),
    [
        ({"version": None}, "VALIDATION_FAILED", "version"),
        ({"resources": None}, "VALIDATION_FAILED", "resources"),
        ({"resources": {"cpu": None}}, "VALIDATION_FAILED", "resources.cpu"),
        ({"resources": {"memory": "12"}}, "VALIDATION_FAILED", "resources.memory"),
        ({"bogus": 1}, "VALIDATION_FAILED", "bogus"),
        ({"version": "9.99"}, "UNSUPPORTED_VERSION", "version"),
    ],
)
async def test_bad_patches(kupe: Kupe, patch: dict[str, Any], code: str, field: str) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    response = await kupe.client.patch(acme.url("/clusters/web"), json=patch, headers=acme.headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field
    current = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert current.json()["resourceVersion"] == created.json()["resourceVersion"]
