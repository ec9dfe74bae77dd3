"""The clusters API (§4) through HTTP: status codes, headers, locking, idempotency, paging."""

from __future__ import annotations

import asyncio
import base64

import yaml
from cryptography import x509

from tests.support.harness import Kupe

GUIDE_BODY = {
    "name": "production",
    "displayName": "Production",
    "type": "shared",
    "version": "1.31",
    "resources": {"cpu": "4", "memory": "16Gi", "storage": "100Gi"},
}


async def test_create_returns_201_with_etag_location_and_pending(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.client.post(acme.url("/clusters"), json=GUIDE_BODY, headers=acme.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["etag"] == f'"{body["resourceVersion"]}"'
    assert response.headers["location"] == "/api/v1/tenants/acme/clusters/production"
    assert body["status"]["phase"] == "Pending"
    assert body["resources"] == {"cpu": "4", "memory": "16Gi", "storage": "100Gi"}
    assert body["generation"] == 1
    assert body["createdAt"].endswith("Z")
    assert {c["type"] for c in body["status"]["conditions"]} == {"Ready", "Provisioned", "UpToDate"}


async def test_defaults_come_from_the_plan_and_newest_version(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="pro")
    response = await kupe.create_cluster(acme, "dev", resources={"cpu": "500m"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["version"] == "1.37"
    # `resources` echoes what was set; the plan's defaults show in the allocation.
    assert body["resources"] == {"cpu": "500m"}
    assert body["status"]["allocatedResources"] == {
        "cpu": "500m",
        "memory": "4Gi",
        "storage": "20Gi",
    }


async def test_guide_flow_reaches_running_and_serves_a_real_ca(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.client.post(acme.url("/clusters"), json=GUIDE_BODY, headers=acme.headers)
    assert created.status_code == 201
    not_ready = await kupe.client.get(
        acme.url("/clusters/production/kubeconfig"), headers=acme.headers
    )
    assert not_ready.status_code == 503
    assert not_ready.json()["code"] == "NOT_READY"
    assert int(not_ready.headers["retry-after"]) > 0

    await kupe.step()
    assert await kupe.phase(acme, "production") == "Provisioning"
    await kupe.run_for(8)
    got = (await kupe.client.get(acme.url("/clusters/production"), headers=acme.headers)).json()
    assert got["status"]["phase"] == "Running"
    assert got["status"]["kubernetesVersion"] == "v1.31.14"
    assert got["status"]["endpoint"] == "https://production.acme.kupe.localhost"
    assert got["status"]["observedGeneration"] == 1

    details = await kupe.client.get(
        acme.url("/clusters/production/kubeconfig"), headers=acme.headers
    )
    assert details.status_code == 200
    assert details.json()["endpoint"] == "https://production.acme.kupe.localhost"
    pem = base64.b64decode(details.json()["certificateAuthority"])
    cert = x509.load_pem_x509_certificate(pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign


async def test_each_cluster_gets_its_own_ca(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for name in ("one", "two"):
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    await kupe.run_for(9)
    cas = set()
    for name in ("one", "two"):
        details = await kupe.client.get(
            acme.url(f"/clusters/{name}/kubeconfig"), headers=acme.headers
        )
        cas.add(details.json()["certificateAuthority"])
    assert len(cas) == 2


async def test_kubeconfig_format_contains_no_secret(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    await kupe.run_for(9)
    response = await kupe.client.get(
        acme.url("/clusters/web/kubeconfig"), params={"format": "kubeconfig"}, headers=acme.headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert acme.key not in response.text
    doc = yaml.safe_load(response.text)
    assert doc["current-context"] == "kupe-acme-web"
    assert doc["clusters"][0]["cluster"]["server"] == "https://web.acme.kupe.localhost"
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1"
    assert exec_["command"] == "kupe"
    assert exec_["args"][:2] == ["auth", "get-token"]


async def test_get_honours_if_none_match(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    tag = created.headers["etag"]
    url = acme.url("/clusters/web")
    cached = await kupe.client.get(url, headers={**acme.headers, "If-None-Match": tag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == tag
    await kupe.step()  # Pending -> Provisioning is a status change: new resourceVersion
    fresh = await kupe.client.get(url, headers={**acme.headers, "If-None-Match": tag})
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != tag


async def test_every_change_gets_a_larger_resource_version(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    versions = [int((await kupe.create_cluster(acme, "web")).json()["resourceVersion"])]
    await kupe.step()
    await kupe.run_for(8)
    url = acme.url("/clusters/web")
    versions.append(
        int((await kupe.client.get(url, headers=acme.headers)).json()["resourceVersion"])
    )
    patched = await kupe.client.patch(url, json={"resources": {"cpu": "3"}}, headers=acme.headers)
    versions.append(int(patched.json()["resourceVersion"]))
    await kupe.step()
    versions.append(
        int((await kupe.client.get(url, headers=acme.headers)).json()["resourceVersion"])
    )
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


async def test_patch_with_stale_if_match_is_412_and_changes_nothing(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web", resources={"cpu": "1"})
    stale = created.headers["etag"]
    url = acme.url("/clusters/web")
    first = await kupe.client.patch(
        url, json={"resources": {"cpu": "2"}}, headers={**acme.headers, "If-Match": stale}
    )
    assert first.status_code == 200
    assert first.headers["etag"] != stale
    second = await kupe.client.patch(
        url, json={"resources": {"cpu": "3"}}, headers={**acme.headers, "If-Match": stale}
    )
    assert second.status_code == 412
    assert second.json()["code"] == "PRECONDITION_FAILED"
    current = (await kupe.client.get(url, headers=acme.headers)).json()
    assert current["resources"]["cpu"] == "2"
    bare = current["resourceVersion"]
    third = await kupe.client.patch(
        url, json={"resources": {"cpu": "3"}}, headers={**acme.headers, "If-Match": bare}
    )
    assert third.status_code == 200
    star = await kupe.client.patch(
        url, json={"alerts": {"a": 1}}, headers={**acme.headers, "If-Match": "*"}
    )
    assert star.status_code == 200


async def test_bad_if_match_syntax_is_400(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    response = await kupe.client.patch(
        acme.url("/clusters/web"),
        json={"alerts": {}},
        headers={**acme.headers, "If-Match": "not-an-etag"},
    )
    assert response.status_code == 400


async def test_patch_is_a_merge_patch(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(
        acme,
        "web",
        resources={"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
        alerts={"email": "ops@acme.io", "rules": {"cpu": 90, "mem": 80}},
    )
    url = acme.url("/clusters/web")
    response = await kupe.client.patch(
        url,
        json={"resources": {"memory": "3Gi"}, "alerts": {"rules": {"mem": None, "disk": 70}}},
        headers=acme.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resources"] == {"cpu": "1", "memory": "3Gi", "storage": "10Gi"}
    assert body["alerts"] == {"email": "ops@acme.io", "rules": {"cpu": 90, "disk": 70}}
    assert body["generation"] == 2
    cleared = await kupe.client.patch(url, json={"alerts": None}, headers=acme.headers)
    assert "alerts" not in cleared.json()
    assert cleared.json()["generation"] == 3
    same = await kupe.client.patch(
        url, json={"name": "web", "type": "shared", "displayName": "Web"}, headers=acme.headers
    )
    assert same.status_code == 200
    assert same.json()["generation"] == 3  # nothing changed, nothing bumped
    assert same.json()["resourceVersion"] == cleared.json()["resourceVersion"]


async def test_immutable_fields(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    url = acme.url("/clusters/web")
    for field, value in (("name", "other"), ("displayName", "Other"), ("type", "dedicated")):
        response = await kupe.client.patch(url, json={field: value}, headers=acme.headers)
        assert response.status_code == 400
        assert response.json() == {
            "error": f"{field} is immutable",
            "code": "IMMUTABLE_FIELD",
            "field": field,
        }


async def test_upgrades_go_one_minor_at_a_time(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web", version="1.31")
    url = acme.url("/clusters/web")
    for version, code in (
        ("1.33", "UNSUPPORTED_UPGRADE"),
        ("1.30", "UNSUPPORTED_VERSION"),
        ("1.29", "UNSUPPORTED_VERSION"),
    ):
        response = await kupe.client.patch(url, json={"version": version}, headers=acme.headers)
        assert response.status_code == 400
        assert response.json()["code"] == code
    ok = await kupe.client.patch(url, json={"version": "1.32"}, headers=acme.headers)
    assert ok.status_code == 200
    down = await kupe.client.patch(url, json={"version": "1.31"}, headers=acme.headers)
    assert down.status_code == 400
    assert down.json()["code"] == "UNSUPPORTED_UPGRADE"


async def test_unsupported_version_on_create(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await kupe.create_cluster(acme, "web", version="1.20")
    assert response.status_code == 400
    assert response.json()["code"] == "UNSUPPORTED_VERSION"
    assert response.json()["field"] == "version"


async def test_duplicate_name_is_409_also_while_terminating(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    again = await kupe.create_cluster(acme, "web")
    assert again.status_code == 409
    assert again.json()["error"] == "Cluster name already exists"
    assert (
        await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers)
    ).status_code == 204
    still = await kupe.create_cluster(acme, "web")
    assert still.status_code == 409
    await kupe.run_for(5)
    assert await kupe.phase(acme, "web") == "<gone>"
    assert (await kupe.create_cluster(acme, "web")).status_code == 201


async def test_delete_is_idempotent_then_404(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    await kupe.run_for(9)
    url = acme.url("/clusters/web")
    assert (await kupe.client.delete(url, headers=acme.headers)).status_code == 204
    assert await kupe.phase(acme, "web") == "Terminating"
    assert (await kupe.client.delete(url, headers=acme.headers)).status_code == 204
    patch = await kupe.client.patch(url, json={"resources": {"cpu": "2"}}, headers=acme.headers)
    assert patch.status_code == 409
    assert patch.json()["code"] == "CLUSTER_TERMINATING"
    await kupe.run_for(4)
    assert (await kupe.client.get(url, headers=acme.headers)).status_code == 404
    assert (await kupe.client.delete(url, headers=acme.headers)).status_code == 404
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert listed.json() == {"items": []}


async def test_delete_with_stale_if_match_is_412(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(acme, "web")
    await kupe.step()
    url = acme.url("/clusters/web")
    response = await kupe.client.delete(
        url, headers={**acme.headers, "If-Match": created.headers["etag"]}
    )
    assert response.status_code == 412
    assert await kupe.phase(acme, "web") == "Provisioning"


async def test_list_is_sorted_and_pages(kupe: Kupe) -> None:
    acme = await kupe.tenant(plan="enterprise")
    names = [f"c{i:02d}" for i in range(7)]
    for name in reversed(names):
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    full = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in full.json()["items"]] == names
    assert "continue" not in full.json()
    seen: list[str] = []
    params: dict[str, str] = {"limit": "3"}
    while True:
        page = await kupe.client.get(acme.url("/clusters"), params=params, headers=acme.headers)
        assert page.status_code == 200
        seen += [c["name"] for c in page.json()["items"]]
        token = page.json().get("continue")
        if not token:
            break
        params = {"limit": "3", "continue": token}
    assert seen == names
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"continue": "garbage!"}):
        response = await kupe.client.get(acme.url("/clusters"), params=bad, headers=acme.headers)
        assert response.status_code == 400, bad


async def test_idempotency_key_replays_and_rejects_other_bodies(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    headers = {**acme.headers, "Idempotency-Key": "create-web-1"}
    body = {"name": "web", "displayName": "Web", "type": "shared"}
    first = await kupe.client.post(acme.url("/clusters"), json=body, headers=headers)
    await kupe.step()  # the cluster moves on; the replay still shows the original response
    second = await kupe.client.post(acme.url("/clusters"), json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.headers["etag"] == second.headers["etag"]
    other = await kupe.client.post(
        acme.url("/clusters"), json={**body, "name": "web2"}, headers=headers
    )
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["web"]


async def test_idempotency_keys_expire_after_24_hours(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    headers = {**acme.headers, "Idempotency-Key": "k"}
    body = {"name": "web", "displayName": "Web", "type": "shared"}
    assert (
        await kupe.client.post(acme.url("/clusters"), json=body, headers=headers)
    ).status_code == 201
    kupe.clock.advance(24 * 3600 + 1)
    again = await kupe.client.post(acme.url("/clusters"), json=body, headers=headers)
    assert again.status_code == 409  # no replay: evaluated afresh, and the name is taken
    assert again.json()["error"] == "Cluster name already exists"


async def test_plan_limits(kupe: Kupe) -> None:
    starter = await kupe.tenant("small", plan="starter")
    dedicated = await kupe.create_cluster(starter, "ded", type="dedicated")
    assert dedicated.status_code == 403
    assert dedicated.json()["code"] == "CLUSTER_DEDICATED_UNSUPPORTED"
    too_big = await kupe.create_cluster(starter, "big", resources={"cpu": "5"})
    assert too_big.status_code == 403
    assert too_big.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    assert "cpu" in too_big.json()["error"]
    assert "by 1" in too_big.json()["error"]
    assert (await kupe.create_cluster(starter, "one")).status_code == 201
    assert (await kupe.create_cluster(starter, "two")).status_code == 201
    third = await kupe.create_cluster(starter, "three")
    assert third.status_code == 403
    assert "at most 2 clusters" in third.json()["error"]
    grow = await kupe.client.patch(
        starter.url("/clusters/one"), json={"resources": {"memory": "7Gi"}}, headers=starter.headers
    )
    assert grow.status_code == 403
    assert grow.json()["code"] == "PLAN_LIMIT_EXCEEDED"
    fits = await kupe.client.patch(
        starter.url("/clusters/one"), json={"resources": {"memory": "6Gi"}}, headers=starter.headers
    )
    assert fits.status_code == 200


async def test_concurrent_creates_cannot_exceed_the_pool(kupe: Kupe) -> None:
    starter = await kupe.tenant("small", plan="starter")
    responses = await asyncio.gather(
        *(kupe.create_cluster(starter, f"c{i}", resources={"cpu": "2"}) for i in range(6))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201, 403, 403, 403, 403]


async def test_roles_and_tenancy(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    other = await kupe.tenant("globex")
    await kupe.create_cluster(acme, "web")
    readonly = {"Authorization": f"Bearer {await kupe.api_key('acme', 'readonly')}"}
    listed = await kupe.client.get(acme.url("/clusters"), headers=readonly)
    assert listed.status_code == 200
    denied = await kupe.client.post(
        acme.url("/clusters"),
        json={"name": "x1", "displayName": "X", "type": "shared"},
        headers=readonly,
    )
    assert denied.status_code == 403
    assert denied.json()["error"] == "Admin access required"
    for method in ("patch", "delete"):
        kwargs = {"json": {"alerts": {}}} if method == "patch" else {}
        response = await getattr(kupe.client, method)(
            acme.url("/clusters/web"), headers=readonly, **kwargs
        )
        assert response.status_code == 403
    cross = await kupe.client.get(acme.url("/clusters"), headers=other.headers)
    assert cross.status_code == 403
    assert cross.json()["error"] == "Not a member of this tenant"
    assert "web" not in cross.text
    unknown = await kupe.client.get("/api/v1/tenants/nope/clusters", headers=acme.headers)
    assert unknown.status_code == 403
    assert unknown.json()["error"] == "Not a member of this tenant"


async def test_credentials_are_checked(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    url = acme.url("/clusters")
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer kupe_short"},
        {"Authorization": f"Bearer {acme.key[:-1]}x"},
        {"Authorization": "Bearer kupe_abcdefgh_" + "A" * 43},
    ):
        response = await kupe.client.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "UNAUTHORIZED"
        assert acme.key not in response.text


async def test_concurrent_creates_with_one_idempotency_key_make_one_cluster(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    headers = {**acme.headers, "Idempotency-Key": "same"}
    body = {"name": "web", "displayName": "Web", "type": "shared"}
    responses = await asyncio.gather(
        *(kupe.client.post(acme.url("/clusters"), json=body, headers=headers) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["resourceVersion"] for r in responses}) == 1
    listed = await kupe.client.get(acme.url("/clusters"), headers=acme.headers)
    assert len(listed.json()["items"]) == 1
