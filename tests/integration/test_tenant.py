"""The tenant (§3) — GET with members and status, PATCH with If-Match and downgrade checks —
and the plan quotas that apply to clusters (§4), including after plan changes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.harness import Kupe, TenantCreds


async def _get(kupe: Kupe, creds: TenantCreds, **headers: str) -> httpx.Response:
    return await kupe.client.get(creds.url(), headers={**creds.headers, **headers})


async def _patch(kupe: Kupe, creds: TenantCreds, body: Any, **headers: str) -> httpx.Response:
    return await kupe.client.patch(creds.url(), json=body, headers={**creds.headers, **headers})


async def _suspend(kupe: Kupe, name: str) -> None:
    async with kupe.runtime.db.write() as session:
        tenant = await kupe.runtime.services.tenants.tenant(session, name)
        await kupe.runtime.services.lifecycle.set_phase(session, tenant, "Suspended")


async def test_get_tenant_has_members_status_and_etag(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    response = await _get(kupe, acme)
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["etag"] == f'"{body["resourceVersion"]}"'
    assert body["name"] == "acme"
    assert body["displayName"] == "Acme"
    assert body["contactEmail"] == "admin@acme.example.com"
    assert body["plan"] == "pro"
    assert body["enforceMetricsLimit"] is False
    assert body["enforceLogLimit"] is False
    assert body["members"] == [{"email": "admin@acme.example.com", "role": "admin"}]
    assert body["createdAt"].endswith("Z")
    usage = body["status"].pop("currentUsage")
    assert body["status"] == {
        "phase": "Active",
        "clusterCount": 0,
        "allocatedResources": {"cpu": "0", "memory": "0Gi", "storage": "0Gi"},
        "poolResources": {"cpu": "8", "memory": "32Gi", "storage": "200Gi"},
    }
    # Billing's running estimate: none yet until the reconciler has looked (tests/integration/
    # test_billing.py has the rest).
    assert usage["stale"] is True
    assert usage["periodStart"] == "2026-04-01T00:00:00Z"
    assert usage["currency"] == "GBP"


async def test_status_sums_live_clusters_and_etag_follows_them(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    before = await _get(kupe, acme)
    etag = before.headers["etag"]
    assert (await _get(kupe, acme, **{"If-None-Match": etag})).status_code == 304

    one = await kupe.create_cluster(acme, "one", resources={"cpu": "2", "memory": "4Gi"})
    assert one.status_code == 201
    two = await kupe.create_cluster(acme, "two", resources={"cpu": "500m", "storage": "100Gi"})
    assert two.status_code == 201, two.text
    after = await _get(kupe, acme, **{"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert int(after.json()["resourceVersion"]) > int(before.json()["resourceVersion"])
    status = after.json()["status"]
    assert status["clusterCount"] == 2
    assert status["allocatedResources"] == {"cpu": "2500m", "memory": "8Gi", "storage": "120Gi"}

    # Removal by the reconciler changes the status, so the ETag moves again.
    etag = after.headers["etag"]
    await kupe.client.delete(acme.url("/clusters/two"), headers=acme.headers)
    await kupe.run_for(10)
    final = await _get(kupe, acme, **{"If-None-Match": etag})
    assert final.status_code == 200
    assert final.json()["status"]["clusterCount"] == 1
    assert final.json()["status"]["allocatedResources"]["cpu"] == "2"


async def test_unlimited_plan_shows_its_pool_as_unlimited(kupe: Kupe) -> None:
    big = await kupe.tenant(plan="enterprise")
    status = (await _get(kupe, big)).json()["status"]
    assert status["poolResources"] == {
        "cpu": "unlimited",
        "memory": "unlimited",
        "storage": "unlimited",
    }


async def test_readonly_key_reads_but_cannot_patch(kupe: Kupe) -> None:
    await kupe.tenant()
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    assert (await _get(kupe, readonly)).status_code == 200
    response = await _patch(kupe, readonly, {"enforceLogLimit": True})
    assert response.status_code == 403
    assert response.json() == {"error": "Admin access required", "code": "ADMIN_REQUIRED"}


async def test_patch_flags_and_plan_bumps_resource_version(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="starter")
    before = await _get(kupe, acme)
    response = await _patch(
        kupe,
        acme,
        {"plan": "business", "enforceMetricsLimit": True, "enforceLogLimit": True},
        **{"If-Match": before.headers["etag"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plan"] == "business"
    assert body["enforceMetricsLimit"] is True
    assert body["enforceLogLimit"] is True
    assert body["status"]["poolResources"]["cpu"] == "64"
    assert response.headers["etag"] == f'"{body["resourceVersion"]}"'
    assert int(body["resourceVersion"]) > int(before.json()["resourceVersion"])
    assert (await _get(kupe, acme)).json() == body


async def test_patch_with_no_change_keeps_the_version(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    before = (await _get(kupe, acme)).json()
    response = await _patch(kupe, acme, {"plan": "pro", "enforceLogLimit": False})
    assert response.status_code == 200
    assert response.json()["resourceVersion"] == before["resourceVersion"]


async def test_patch_if_match(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    etag = (await _get(kupe, acme)).headers["etag"]
    assert (await _patch(kupe, acme, {"enforceLogLimit": True})).status_code == 200
    stale = await _patch(kupe, acme, {"enforceMetricsLimit": True}, **{"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["code"] == "PRECONDITION_FAILED"
    assert (await _get(kupe, acme)).json()["enforceMetricsLimit"] is False
    bad = await _patch(kupe, acme, {"enforceMetricsLimit": True}, **{"If-Match": "yesterday"})
    assert bad.status_code == 400
    star = await _patch(kupe, acme, {"enforceMetricsLimit": True}, **{"If-Match": "*"})
    assert star.status_code == 200
    current = star.json()["resourceVersion"]
    bare = await _patch(kupe, acme, {"enforceMetricsLimit": False}, **{"If-Match": current})
    assert bare.status_code == 200


async def test_patch_validation(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    cases: list[tuple[Any, str | None]] = [
        ({}, None),
        ({"plan": None}, "plan"),
        ({"enforceLogLimit": "yes"}, "enforceLogLimit"),
        ({"enforceMetricsLimit": None}, "enforceMetricsLimit"),
        ({"plan": "platinum"}, "plan"),
        ({"colour": "blue"}, "colour"),
        ({"members": []}, "members"),
        ([], None),
    ]
    for body, field in cases:
        response = await _patch(kupe, acme, body)
        assert response.status_code == 400, (body, response.text)
        error = response.json()
        assert error["code"] == "VALIDATION_FAILED", (body, error)
        assert error.get("field") == field, (body, error)
    malformed = await kupe.client.patch(
        acme.url(),
        content=b"{not json",
        headers={**acme.headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "MALFORMED_JSON"


async def test_patch_immutable_fields(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    changed = await _patch(kupe, acme, {"name": "other", "enforceLogLimit": True})
    assert changed.status_code == 400
    assert changed.json()["code"] == "IMMUTABLE_FIELD"
    assert changed.json()["field"] == "name"
    same = await _patch(
        kupe, acme, {"name": "acme", "displayName": "Acme", "enforceLogLimit": True}
    )
    assert same.status_code == 200, same.text


async def test_downgrade_below_cluster_count_is_blocked(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    for name in ("one", "two", "three"):
        created = await kupe.create_cluster(
            acme, name, resources={"cpu": "1", "memory": "1Gi", "storage": "1Gi"}
        )
        assert created.status_code == 201
    before = (await _get(kupe, acme)).json()
    response = await _patch(kupe, acme, {"plan": "starter"})
    assert response.status_code == 409
    error = response.json()
    assert error["code"] == "PLAN_DOWNGRADE_BLOCKED"
    assert "maxClusters" in error["error"]
    assert "3 clusters" in error["error"]
    after = (await _get(kupe, acme)).json()
    assert after["plan"] == "pro"
    assert after["resourceVersion"] == before["resourceVersion"]

    # Once a deletion has completed, the tenant fits and the downgrade goes through.
    await kupe.client.delete(acme.url("/clusters/three"), headers=acme.headers)
    still = await _patch(kupe, acme, {"plan": "starter"})
    assert still.status_code == 409, "a terminating cluster still holds its share"
    await kupe.run_for(10)
    done = await _patch(kupe, acme, {"plan": "starter"})
    assert done.status_code == 200, done.text
    assert done.json()["plan"] == "starter"


async def test_downgrade_below_pool_names_the_resource(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    created = await kupe.create_cluster(
        acme, "big", resources={"cpu": "6", "memory": "4Gi", "storage": "60Gi"}
    )
    assert created.status_code == 201
    response = await _patch(kupe, acme, {"plan": "starter"})
    assert response.status_code == 409
    error = response.json()
    assert error["code"] == "PLAN_DOWNGRADE_BLOCKED"
    assert "resourcePool.cpu" in error["error"]
    assert "resourcePool.storage" in error["error"]
    assert "resourcePool.memory" not in error["error"]


async def test_downgrade_with_dedicated_clusters_is_blocked(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="business")
    created = await kupe.create_cluster(acme, "private", type="dedicated")
    assert created.status_code == 201, created.text
    response = await _patch(kupe, acme, {"plan": "pro"})
    assert response.status_code == 409
    assert response.json()["code"] == "PLAN_DOWNGRADE_BLOCKED"
    assert "dedicatedClusters" in response.json()["error"]
    assert (await _patch(kupe, acme, {"plan": "enterprise"})).status_code == 200


async def test_suspended_tenant_reads_but_does_not_write(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.run_for(10)
    await _suspend(kupe, "acme")

    got = await _get(kupe, acme)
    assert got.status_code == 200
    assert got.json()["status"]["phase"] == "Suspended"
    clusters = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert clusters.status_code == 200
    writes = [
        await _patch(kupe, acme, {"enforceLogLimit": True}),
        await kupe.create_cluster(acme, "more"),
        await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers),
        await kupe.client.post(
            acme.url("/apikeys"), json={"displayName": "x", "role": "admin"}, headers=acme.headers
        ),
        await kupe.client.post(
            acme.url("/members"),
            json={"email": "x@acme.example.com", "role": "admin"},
            headers=acme.headers,
        ),
    ]
    for response in writes:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "TENANT_SUSPENDED"
    # Its clusters keep running.
    await kupe.run_for(30)
    assert await kupe.phase(acme, "web") == "Running"


# -- quotas ------------------------------------------------------------------------------------


async def test_max_clusters_on_create(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="starter")
    small = {"cpu": "1", "memory": "1Gi", "storage": "1Gi"}
    assert (await kupe.create_cluster(acme, "one", resources=small)).status_code == 201
    assert (await kupe.create_cluster(acme, "two", resources=small)).status_code == 201
    third = await kupe.create_cluster(acme, "three", resources=small)
    assert third.status_code == 403
    assert third.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    assert "at most 2 clusters" in third.json()["error"]
    # Upgrading the plan lifts the limit.
    assert (await _patch(kupe, acme, {"plan": "pro"})).status_code == 200
    assert (await kupe.create_cluster(acme, "three", resources=small)).status_code == 201


async def test_pool_on_create_and_on_resize(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="starter")
    first = await kupe.create_cluster(
        acme, "one", resources={"cpu": "3", "memory": "4Gi", "storage": "10Gi"}
    )
    assert first.status_code == 201
    over = await kupe.create_cluster(
        acme, "two", resources={"cpu": "2", "memory": "1Gi", "storage": "1Gi"}
    )
    assert over.status_code == 403
    assert over.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    assert over.json()["field"] == "resources.cpu"
    assert "exceeding it by 1" in over.json()["error"]
    fits = await kupe.create_cluster(
        acme, "two", resources={"cpu": "1", "memory": "4Gi", "storage": "40Gi"}
    )
    assert fits.status_code == 201, fits.text

    grow = await kupe.client.patch(
        acme.url("/clusters/one"), json={"resources": {"memory": "5Gi"}}, headers=acme.headers
    )
    assert grow.status_code == 403
    assert grow.json()["field"] == "resources.memory"
    shrink = await kupe.client.patch(
        acme.url("/clusters/one"), json={"resources": {"cpu": "2"}}, headers=acme.headers
    )
    assert shrink.status_code == 200
    # After an upgrade the bigger pool applies to resizes too.
    assert (await _patch(kupe, acme, {"plan": "pro"})).status_code == 200
    grow = await kupe.client.patch(
        acme.url("/clusters/one"), json={"resources": {"memory": "20Gi"}}, headers=acme.headers
    )
    assert grow.status_code == 200, grow.text


async def test_dedicated_clusters_follow_the_plan(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    refused = await kupe.create_cluster(acme, "private", type="dedicated")
    assert refused.status_code == 403
    assert refused.json()["code"] == "CLUSTER_DEDICATED_UNSUPPORTED"
    assert (await _patch(kupe, acme, {"plan": "business"})).status_code == 200
    allowed = await kupe.create_cluster(acme, "private", type="dedicated")
    assert allowed.status_code == 201, allowed.text


async def test_body_limits_on_tenant_member_and_key_writes(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    writes = [
        ("PATCH", acme.url()),
        ("POST", acme.url("/apikeys")),
        ("POST", acme.url("/members")),
        ("PATCH", acme.url("/members/admin%40acme.example.com")),
    ]
    for method, url in writes:
        text = await kupe.client.request(
            method,
            url,
            content=b"role=admin",
            headers={**acme.headers, "Content-Type": "text/plain"},
        )
        assert text.status_code == 415, (method, url, text.text)
        assert text.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
        huge = await kupe.client.request(
            method,
            url,
            content=b'{"displayName": "' + b"x" * (1024 * 1024) + b'"}',
            headers={**acme.headers, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413, (method, url)
        assert huge.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert (await _get(kupe, acme)).json()["members"] == [
        {"email": "admin@acme.example.com", "role": "admin"}
    ]


async def test_a_suspended_tenants_admins_can_still_revoke_keys_and_remove_members(
    kupe: Kupe,
) -> None:
    """Security operations work while suspended: a leaked key can be revoked, a member removed
    or demoted; everything else that writes stays refused."""
    acme = await kupe.tenant(plan="pro")
    leaked = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "leaked", "role": "admin"}, headers=acme.headers
    )
    for email, role in (("gone@acme.example.com", "admin"), ("demoted@acme.example.com", "admin")):
        added = await kupe.client.post(
            acme.url("/members"), json={"email": email, "role": role}, headers=acme.headers
        )
        assert added.status_code == 201, added.text
    await _suspend(kupe, "acme")
    leaked_headers = {"Authorization": f"Bearer {leaked.json()['key']}"}
    assert (await kupe.client.get(acme.url("/clusters"), headers=leaked_headers)).status_code == 200

    revoked = await kupe.client.delete(
        acme.url(f"/apikeys/{leaked.json()['id']}"), headers=acme.headers
    )
    assert revoked.status_code == 204, revoked.text
    assert (await kupe.client.get(acme.url("/clusters"), headers=leaked_headers)).status_code == 401
    removed = await kupe.client.delete(
        acme.url("/members/gone@acme.example.com"), headers=acme.headers
    )
    assert removed.status_code == 204, removed.text
    demoted = await kupe.client.patch(
        acme.url("/members/demoted@acme.example.com"),
        json={"role": "readonly"},
        headers=acme.headers,
    )
    assert demoted.status_code == 200, demoted.text
    # Promoting is not a security operation: refused while suspended.
    promoted = await kupe.client.patch(
        acme.url("/members/demoted@acme.example.com"), json={"role": "admin"}, headers=acme.headers
    )
    assert promoted.status_code == 403
    assert promoted.json()["code"] == "TENANT_SUSPENDED"
    members = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()["items"]
    assert {m["email"]: m["role"] for m in members}.get("demoted@acme.example.com") == "readonly"
    assert "gone@acme.example.com" not in {m["email"] for m in members}
    # A readonly key cannot do them, suspended or not.
    reader = {"Authorization": f"Bearer {await kupe.api_key('acme', 'readonly')}"}
    refused = await kupe.client.delete(
        acme.url("/members/demoted@acme.example.com"), headers=reader
    )
    assert refused.status_code == 403
    assert refused.json()["code"] != "TENANT_SUSPENDED"
