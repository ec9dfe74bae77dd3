"""Contract details (issue 12, items 9, 11 and 13-17): opaque ETags, Allow on 405, UTC
timestamps, 409 on a Terminating cluster's connection details, units on zero, paged plans,
member emails and display names, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.harness import Kupe, TenantCreds


async def running(kupe: Kupe, acme: TenantCreds, name: str = "web") -> dict[str, Any]:
    assert (await kupe.create_cluster(acme, name)).status_code == 201
    await kupe.run_for(10)
    response = await kupe.client.get(acme.url(f"/clusters/{name}"), headers=acme.headers)
    body: dict[str, Any] = response.json()
    assert body["status"]["phase"] == "Running"
    return body


# --- item 13: opaque ETags are valid, and simply do not match ------------------------------

OPAQUE = ['"abc"', 'W/"abc"', '"abc", W/"def"', '"-1"', '"a,b"', '"99999999999999999999999"']


@pytest.mark.parametrize("header", OPAQUE)
async def test_an_opaque_if_none_match_is_not_a_match(kupe: Kupe, header: str) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    for path in ("/clusters/web", ""):
        headers = {**acme.headers, "If-None-Match": header}
        response = await kupe.client.get(acme.url(path), headers=headers)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("header", OPAQUE)
async def test_an_opaque_if_match_is_412_and_changes_nothing(kupe: Kupe, header: str) -> None:
    acme = await kupe.tenant()
    created = (await kupe.create_cluster(acme, "web")).json()
    headers = {**acme.headers, "If-Match": header}
    patched = await kupe.client.patch(
        acme.url("/clusters/web"), json={"alerts": {"a": 1}}, headers=headers
    )
    assert patched.status_code == 412, patched.text
    assert patched.json()["code"] == "PRECONDITION_FAILED"
    deleted = await kupe.client.delete(acme.url("/clusters/web"), headers=headers)
    assert deleted.status_code == 412
    current = await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers)
    assert current.json()["resourceVersion"] == created["resourceVersion"]


async def test_a_list_with_the_current_etag_among_opaque_ones_matches(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    headers = {**acme.headers, "If-None-Match": f'"abc", W/"x", {created.headers["etag"]}'}
    response = await kupe.client.get(acme.url("/clusters/web"), headers=headers)
    assert response.status_code == 304


@pytest.mark.parametrize("header", ["abc", '"unterminated', '"sp ace"', '"1",,'])
async def test_malformed_etags_are_still_400(kupe: Kupe, header: str) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    headers = {**acme.headers, "If-Match": header}
    response = await kupe.client.patch(acme.url("/clusters/web"), json={}, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_HEADER"


# --- item 14: Allow lists the real methods -------------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/tenants/acme/clusters/web", "DELETE, GET, PATCH"),
        ("/api/v1/tenants/acme/clusters", "GET, POST"),
        ("/api/v1/tenants/acme", "DELETE, GET, PATCH"),
        ("/api/v1/tenants/acme/members/a%40b.test", "DELETE, GET, PATCH"),
        ("/api/v1/plans", "GET"),
    ],
)
async def test_405_names_every_method_of_the_path(kupe: Kupe, path: str, allowed: str) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.put(path, json={}, headers=acme.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


# --- item 15: every timestamp is UTC with Z ------------------------------------------------


async def test_expires_at_given_with_an_offset_is_returned_in_utc(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    plus_two = timezone(timedelta(hours=2))
    expiry = (kupe.clock.now() + timedelta(days=3)).astimezone(plus_two).replace(microsecond=0)
    body = {"displayName": "ci", "role": "readonly", "expiresAt": expiry.isoformat()}
    created = await kupe.client.post(acme.url("/apikeys"), json=body, headers=acme.headers)
    assert created.status_code == 201, created.text
    expected = expiry.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert created.json()["expiresAt"] == expected
    listed = await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)
    stamps = [item.get("expiresAt") for item in listed.json()["items"]]
    assert expected in stamps
    for item in listed.json()["items"]:
        for key in ("createdAt", "expiresAt", "lastUsedAt"):
            assert key not in item or item[key].endswith("Z"), item


async def test_every_returned_timestamp_ends_in_z(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    cluster = await running(kupe, acme)
    tenant = (await kupe.client.get(acme.url(), headers=acme.headers)).json()
    stamps = [cluster["createdAt"], tenant["createdAt"]]
    stamps += [c["lastTransitionTime"] for c in cluster["status"]["conditions"]]
    for stamp in stamps:
        assert stamp.endswith("Z"), stamp
        datetime.fromisoformat(stamp)


# --- item 16: a Terminating cluster's connection details are 409, as documented -------------


async def test_connection_details_of_a_terminating_cluster_are_409(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await running(kupe, acme)
    assert (await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers)).is_success
    for params in ({}, {"format": "kubeconfig"}):
        response = await kupe.client.get(
            acme.url("/clusters/web/kubeconfig"), params=params, headers=acme.headers
        )
        assert response.status_code == 409
        assert response.json()["code"] == "CLUSTER_TERMINATING"


async def test_openapi_documents_409_cluster_terminating_for_kubeconfig(kupe: Kupe) -> None:
    document = (await kupe.client.get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/api/v1/tenants/{tenant}/clusters/{name}/kubeconfig"]["get"]
    conflict = operation["responses"]["409"]
    assert "CLUSTER_TERMINATING" in conflict["description"]
    schema = conflict["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorBody"}


# --- item 17: units on zero; /plans pages like every list -----------------------------------


async def test_an_empty_tenant_allocates_zero_with_units(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    tenant = (await kupe.client.get(acme.url(), headers=acme.headers)).json()
    assert tenant["status"]["allocatedResources"] == {"cpu": "0", "memory": "0Gi", "storage": "0Gi"}


async def test_plans_honour_limit_and_continue(kupe: Kupe) -> None:
    everything = (await kupe.client.get("/api/v1/plans")).json()["items"]
    names: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        page = (await kupe.client.get("/api/v1/plans", params=params)).json()
        assert len(page["items"]) <= 1
        names += [plan["name"] for plan in page["items"]]
        if "continue" not in page:
            break
        params = {"limit": 1, "continue": page["continue"]}
    assert names == [plan["name"] for plan in everything]
    assert len(names) > 1
    for bad in ({"limit": 0}, {"limit": 1001}, {"continue": "garbage!"}):
        response = await kupe.client.get("/api/v1/plans", params=bad)
        assert response.status_code == 400


# --- item 9: member emails -------------------------------------------------------------------

LOOK_ALIKES = [
    "evil@exаmple.com",  # a Cyrillic a in the domain
    "evil@xn--exmple-4nf.com",  # the same, already IDNA-encoded
    "аdmin@example.com",  # a Cyrillic a in the local part
    "admin@exаmple.tеst",
]


@pytest.mark.parametrize("email", LOOK_ALIKES)
async def test_mixed_script_emails_are_400(kupe: Kupe, email: str) -> None:
    acme = await kupe.tenant()
    body = {"email": email, "role": "readonly"}
    response = await kupe.client.post(acme.url("/members"), json=body, headers=acme.headers)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "email"
    members = await kupe.client.get(acme.url("/members"), headers=acme.headers)
    assert len(members.json()["items"]) == 1


@pytest.mark.parametrize(
    ("email", "stored"),
    [
        ("admin@acme.test", "admin@acme.test"),
        ("ops@printer.local", "ops@printer.local"),
        ("ops@corp.internal", "ops@corp.internal"),
        ("root@localhost", "root@localhost"),
        ("Ｂob@Ｅxample.com", "bob@example.com"),  # fullwidth: NFKC
        ("ivan@пример.рф", "ivan@пример.рф"),  # one script per part is fine
        ("taro@例え.テスト", "taro@例え.テスト"),  # Han with Hiragana/Katakana is one system
    ],
)
async def test_valid_emails_are_accepted_normalised(kupe: Kupe, email: str, stored: str) -> None:
    acme = await kupe.tenant()
    body = {"email": email, "role": "readonly"}
    response = await kupe.client.post(acme.url("/members"), json=body, headers=acme.headers)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == stored
    again = await kupe.client.post(
        acme.url("/members"), json={"email": stored, "role": "admin"}, headers=acme.headers
    )
    assert again.status_code == 409
    removed = await kupe.client.delete(
        acme.url(f"/members/{quote(email, safe='')}"), headers=acme.headers
    )
    assert removed.status_code == 204


# --- item 11: display names cannot carry control characters ---------------------------------


@pytest.mark.parametrize(
    "name", ["Web\x1b]0;pwned\x07", "Web\x1b[2J", "Web\x9b31m", "W\x7feb", "W\neb"]
)
async def test_control_characters_in_display_names_are_400(kupe: Kupe, name: str) -> None:
    acme = await kupe.tenant()
    response = await kupe.create_cluster(acme, "web", displayName=name)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "displayName"
    key = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": name, "role": "readonly"}, headers=acme.headers
    )
    assert key.status_code == 400
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert listed.json()["items"] == []
