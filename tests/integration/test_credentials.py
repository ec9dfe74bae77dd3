"""Short-lived cluster credentials and the TokenReview webhook, on SQLite and PostgreSQL: a token
works for its cluster only, with the caller's role, and stops the moment its key, member,
cluster or tenant does; it is never a Kupe API key and never stored raw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from tests.support.harness import Kupe, TenantCreds


async def running(kupe: Kupe, creds: TenantCreds, name: str = "web") -> str:
    """A Running cluster's id."""
    assert (await kupe.create_cluster(creds, name)).status_code == 201
    await kupe.run_for(9)
    assert await kupe.phase(creds, name) == "Running"
    async with kupe.runtime.db.read() as session:
        found = await session.scalar(
            text("SELECT id FROM clusters WHERE name = :n AND removed_at IS NULL"), {"n": name}
        )
    return str(found)


async def issue(kupe: Kupe, creds: TenantCreds, name: str = "web", **body: Any) -> httpx.Response:
    return await kupe.client.post(
        creds.url(f"/clusters/{name}/credentials"), json=body, headers=creds.headers
    )


async def review(kupe: Kupe, cluster_id: str, token: str) -> dict[str, Any]:
    response = await kupe.client.post(
        f"/internal/v1/clusters/{cluster_id}/tokenreview?timeout=30s",
        json={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": ["https://kubernetes.default.svc"]},
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["apiVersion"], body["kind"]) == ("authentication.k8s.io/v1", "TokenReview")
    status: dict[str, Any] = body["status"]
    return status


async def test_a_token_for_one_cluster_carries_the_callers_role(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    web = await running(kupe, acme)
    db = await running(kupe, acme, "db")
    response = await issue(kupe, acme)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"endpoint", "certificateAuthority", "token", "expiresAt"}
    details = await kupe.client.get(acme.url("/clusters/web/kubeconfig"), headers=acme.headers)
    assert body["endpoint"] == details.json()["endpoint"]
    assert body["certificateAuthority"] == details.json()["certificateAuthority"]
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert expires == kupe.clock.now().replace(microsecond=0) + timedelta(minutes=15)

    token = body["token"]
    assert token.startswith("kct_")
    assert token != acme.key
    admin = await review(kupe, web, token)
    assert admin["authenticated"] is True
    key_id = "ak-" + acme.key.split("_")[1]
    assert admin["user"]["username"] == f"kupe:apikey:{key_id}"
    assert admin["user"]["groups"] == ["kupe:admin"]
    # Not for another cluster, and not a Kupe API key.
    assert (await review(kupe, db, token))["authenticated"] is False
    as_key = await kupe.client.get(acme.url(), headers={"Authorization": f"Bearer {token}"})
    assert as_key.status_code == 401

    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    viewer = (await issue(kupe, readonly)).json()["token"]
    assert (await review(kupe, web, viewer))["user"]["groups"] == ["kupe:readonly"]


async def test_tokens_expire_and_never_outlive_their_key(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    web = await running(kupe, acme)
    short = await issue(kupe, acme, expirationSeconds=60)
    assert short.status_code == 201
    kupe.clock.advance(61)
    assert (await review(kupe, web, short.json()["token"]))["authenticated"] is False
    for seconds in (59, 3601, "soon"):
        refused = await issue(kupe, acme, expirationSeconds=seconds)
        assert refused.status_code == 400
        assert refused.json()["field"] == "expirationSeconds"

    soon = (kupe.clock.now() + timedelta(minutes=5)).astimezone(UTC)
    created = await kupe.client.post(
        acme.url("/apikeys"),
        json={"displayName": "ci", "role": "admin", "expiresAt": soon.isoformat()},
        headers=acme.headers,
    )
    brief = TenantCreds("acme", created.json()["key"])
    capped = (await issue(kupe, brief, expirationSeconds=3600)).json()
    assert capped["expiresAt"] == soon.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_revoking_the_key_or_deleting_the_cluster_ends_the_token(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    web = await running(kupe, acme)
    db = await running(kupe, acme, "db")
    other = TenantCreds("acme", await kupe.api_key("acme", "admin"))
    token = (await issue(kupe, other)).json()["token"]
    kept = (await issue(kupe, acme, "db")).json()["token"]
    assert (await review(kupe, web, token))["authenticated"] is True
    key_id = "ak-" + other.key.split("_")[1]
    assert (
        await kupe.client.delete(acme.url(f"/apikeys/{key_id}"), headers=acme.headers)
    ).status_code == 204
    assert (await review(kupe, web, token))["authenticated"] is False

    assert (await review(kupe, db, kept))["authenticated"] is True
    assert (
        await kupe.client.delete(acme.url("/clusters/db"), headers=acme.headers)
    ).status_code == 204
    assert (await review(kupe, db, kept))["authenticated"] is False  # at once, still tearing down


async def test_no_token_for_a_cluster_that_does_not_serve_or_another_tenants(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    globex = await kupe.tenant("globex")
    await kupe.create_cluster(acme, "web")
    early = await issue(kupe, acme)
    assert early.status_code == 503
    assert early.json()["code"] == "NOT_READY"
    await kupe.run_for(9)
    foreign = await kupe.client.post(
        acme.url("/clusters/web/credentials"), json={}, headers=globex.headers
    )
    assert foreign.status_code == 403
    missing = await issue(kupe, acme, "nope")
    assert missing.status_code == 404


async def test_tokens_are_stored_only_as_hashes(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await running(kupe, acme)
    token = (await issue(kupe, acme)).json()["token"]
    async with kupe.runtime.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM cluster_tokens"))).all()
    assert rows
    for row in rows:
        assert token not in " ".join(str(value) for value in row)
        assert token.split("_", 2)[2] not in " ".join(str(value) for value in row)


async def test_a_garbled_review_is_refused_cleanly(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    web = await running(kupe, acme)
    for body in ({}, {"spec": {}}, {"spec": {"token": 42}}, [1, 2]):
        response = await kupe.client.post(f"/internal/v1/clusters/{web}/tokenreview", json=body)
        assert response.status_code == 200
        assert response.json()["status"]["authenticated"] is False
    assert (await review(kupe, web, "kct_abcdefgh_" + "A" * 43))["authenticated"] is False


async def test_the_kubeconfig_asks_for_a_token_of_this_cluster(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await running(kupe, acme)
    response = await kupe.client.get(
        acme.url("/clusters/web/kubeconfig"), params={"format": "kubeconfig"}, headers=acme.headers
    )
    assert response.status_code == 200
    assert acme.key not in response.text
    assert "kct_" not in response.text
    args = response.text.split("args:")[1]
    for expected in ("get-token", "--tenant", "acme", "--cluster", "web", "--api-url"):
        assert expected in args
