"""A cluster's timeline (issue 13 item 3), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.harness import Kupe, running_kupe, test_settings


async def timeline(kupe: Kupe, creds: Any, name: str) -> list[dict[str, Any]]:
    response = await kupe.client.get(creds.url(f"/clusters/{name}/events"), headers=creds.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_create_running_resize_delete(kupe: Kupe) -> None:
    creds = await kupe.tenant("acme")
    assert (await kupe.create_cluster(creds, "web")).status_code == 201
    await kupe.run_for(10)
    patch = await kupe.client.patch(
        creds.url("/clusters/web"), json={"resources": {"cpu": "2"}}, headers=creds.headers
    )
    assert patch.status_code == 200, patch.text
    await kupe.run_for(10)
    # A read-only member sees the timeline too.
    reader = await kupe.api_key("acme", "readonly")
    response = await kupe.client.get(
        creds.url("/clusters/web/events"), headers={"Authorization": f"Bearer {reader}"}
    )
    assert response.status_code == 200, response.text
    assert (await kupe.client.delete(creds.url("/clusters/web"), headers=creds.headers)).is_success
    await kupe.run_for(10)
    items = await timeline(kupe, creds, "web")  # the cluster deleted last, by name
    reasons = [item["reason"] for item in items]
    assert reasons == [
        "Created",
        "ProvisioningStarted",
        "Running",
        "Updated",
        "DeleteRequested",
        "Deleted",
    ], reasons
    assert items[0]["type"] == "ADDED"
    assert items[-1]["type"] == "DELETED"
    assert items[0]["actor"].startswith("apikey:")
    assert items[1]["actor"] == "system"
    assert items[3]["actor"] == items[0]["actor"]
    times = [item["time"] for item in items]
    assert times == sorted(times)
    assert all(t.endswith("Z") for t in times)
    versions = [int(item["resourceVersion"]) for item in items]
    assert versions == sorted(set(versions))


async def test_a_failed_provider_names_its_reason(tmp_path: Path, database_url: str) -> None:
    settings = test_settings(tmp_path, database_url, sim_fail_pattern="^doomed")
    async with running_kupe(settings) as kupe:
        creds = await kupe.tenant("acme")
        assert (await kupe.create_cluster(creds, "doomed-1")).status_code == 201
        await kupe.run_for(9)
        items = await timeline(kupe, creds, "doomed-1")
    assert [item["reason"] for item in items] == ["Created", "Failed"]
    assert "simulated permanent failure" in items[-1]["message"]


async def test_other_tenants_and_unknown_clusters_are_404(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    rival = await kupe.tenant("rival")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    for creds, url in (
        (rival, rival.url("/clusters/web/events")),
        (acme, acme.url("/clusters/x/events")),
    ):
        response = await kupe.client.get(url, headers=creds.headers)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "NOT_FOUND"
    response = await kupe.client.get(acme.url("/clusters/web/events"), headers=rival.headers)
    assert response.status_code in (403, 404)
