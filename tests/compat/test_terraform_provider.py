"""The hosted Terraform provider's calls, replayed with their exact JSON (written from the
issue's description of what it sends, not from its code), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Kupe

CREATE_WITHOUT_RESOURCES = {
    "name": "prod",
    "displayName": "Production",
    "type": "shared",
    "version": "1.36",
}


async def test_a_cluster_created_without_resources_reports_none(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    created = await kupe.client.post(
        acme.url("/clusters"), json=CREATE_WITHOUT_RESOURCES, headers=acme.headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert "resources" not in body  # the provider declares it optional, not computed
    assert body["status"]["allocatedResources"] == {
        "cpu": "2",
        "memory": "4Gi",
        "storage": "20Gi",
    }
    await kupe.run_for(9)
    read = (await kupe.client.get(acme.url("/clusters/prod"), headers=acme.headers)).json()
    assert "resources" not in read  # a later plan sees no diff
    assert read["status"]["allocatedResources"] == body["status"]["allocatedResources"]


async def test_an_update_with_an_empty_version_leaves_the_version(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    await kupe.client.post(
        acme.url("/clusters"), json=CREATE_WITHOUT_RESOURCES, headers=acme.headers
    )
    await kupe.run_for(9)
    update: dict[str, Any] = {"version": "", "resources": {"cpu": "3"}}
    response = await kupe.client.patch(
        acme.url("/clusters/prod"), json=update, headers=acme.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == "1.36"
    assert response.json()["resources"] == {"cpu": "3"}  # the merged result of what was set
    only_empty = await kupe.client.patch(
        acme.url("/clusters/prod"), json={"version": ""}, headers=acme.headers
    )
    assert only_empty.status_code == 200
    assert only_empty.json()["generation"] == response.json()["generation"]


async def test_high_availability_migrates_and_cannot_be_turned_off(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    await kupe.client.post(
        acme.url("/clusters"), json=CREATE_WITHOUT_RESOURCES, headers=acme.headers
    )
    await kupe.run_for(9)
    plain = (await kupe.client.get(acme.url("/clusters/prod"), headers=acme.headers)).json()
    assert plain["highAvailability"] is False
    assert plain["status"]["haConfigured"] is False
    assert (plain["status"]["haReplicasReady"], plain["status"]["haReplicasDesired"]) == (1, 1)
    assert "haPhase" not in plain["status"]

    enabled = await kupe.client.patch(
        acme.url("/clusters/prod"), json={"highAvailability": True}, headers=acme.headers
    )
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["status"]["haConfigured"] is True
    assert enabled.json()["status"]["haPhase"] == "pending"
    assert enabled.json()["status"]["haEnabledAt"].endswith("Z")
    await kupe.step()
    migrating = (await kupe.client.get(acme.url("/clusters/prod"), headers=acme.headers)).json()
    assert migrating["status"]["phase"] == "Migrating"
    assert migrating["status"]["haPhase"] == "migrating"
    await kupe.run_for(6)
    done = (await kupe.client.get(acme.url("/clusters/prod"), headers=acme.headers)).json()
    assert done["status"]["phase"] == "Running"
    assert done["status"]["haPhase"] == "ha-healthy"
    assert (done["status"]["haReplicasReady"], done["status"]["haReplicasDesired"]) == (3, 3)
    assert done["status"]["observedGeneration"] == done["generation"]

    off = await kupe.client.patch(
        acme.url("/clusters/prod"), json={"highAvailability": False}, headers=acme.headers
    )
    assert off.status_code == 400
    assert off.json()["code"] == "HA_DISABLE_UNSUPPORTED"
    assert off.json()["field"] == "highAvailability"
    same = await kupe.client.patch(
        acme.url("/clusters/prod"), json={"highAvailability": True}, headers=acme.headers
    )
    assert same.status_code == 200
    assert same.json()["generation"] == done["generation"]


async def test_a_cluster_may_be_created_highly_available(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    created = await kupe.client.post(
        acme.url("/clusters"),
        json={**CREATE_WITHOUT_RESOURCES, "highAvailability": True},
        headers=acme.headers,
    )
    assert created.status_code == 201, created.text
    await kupe.run_for(9)
    done = (await kupe.client.get(acme.url("/clusters/prod"), headers=acme.headers)).json()
    assert (done["status"]["phase"], done["status"]["haPhase"]) == ("Running", "ha-healthy")


async def test_routes_not_built_answer_501_not_404(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for method, path in (
        # Every route of the contract is built now: what is left is sub-routes of known
        # resources, which a newer client might call.
        ("GET", "/webhooks/wh-abc/unknown-sub-route"),
        ("GET", "/audit/2026-04"),
        ("PUT", "/alertmanager/receivers/pager/unknown-sub-route"),
        ("GET", "/invoices/2026-11/unknown-sub-route"),
        ("GET", "/clusters/web/unknown-sub-route"),
        ("DELETE", "/apikeys/ak-abcdefgh/extra"),
    ):
        response = await kupe.client.request(method, acme.url(path), headers=acme.headers)
        assert response.status_code == 501, (method, path, response.text)
        assert response.json()["code"] == "NOT_IMPLEMENTED"
    unknown = await kupe.client.get(acme.url("/no-such-resource"), headers=acme.headers)
    assert unknown.status_code == 404


async def test_plan_limit_uses_the_hosted_wording(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="starter")
    for name in ("one", "two"):
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    third = await kupe.create_cluster(acme, "three")
    assert third.status_code == 403
    assert third.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    assert "maximum cluster limit reached" in third.json()["error"]


async def test_405_lists_the_real_methods(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.put(acme.url(), json={}, headers=acme.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"
