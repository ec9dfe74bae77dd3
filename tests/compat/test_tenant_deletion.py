"""The hosted API's DELETE /tenants/{tenant}, every answer it gives, on SQLite and PostgreSQL:
only the owner with an OIDC token, the name typed to confirm, one request a minute; the
tenant stays Terminating while its clusters go, then is gone (404 to its owner)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.oidc import AUDIENCE, Issuer, serve_issuer

OWNER = "admin@acme.example.com"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        yield running


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path, issuer: Issuer) -> AsyncIterator[Kupe]:
    settings = test_settings(
        tmp_path,
        database_url,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.jwks_url,
    )
    async with running_kupe(settings) as app:
        yield app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_answer_of_tenant_deletion(kupe: Kupe, issuer: Issuer) -> None:
    acme = await kupe.tenant("acme")
    await kupe.tenant("globex")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.run_for(9)
    owner = bearer(issuer.token(OWNER, now=kupe.clock.now()))
    url = "/api/v1/tenants/acme"

    async def delete(headers: dict[str, str], **body: object) -> tuple[int, dict[str, object]]:
        response = await kupe.client.request("DELETE", url, json=body, headers=headers)
        return response.status_code, response.json()

    status, error = await delete(acme.headers, confirm="acme", cascade=True)
    assert (status, error["code"]) == (403, "owner_required")  # an API key, even an admin's
    other = await kupe.client.post(
        "/api/v1/tenants/acme/members",
        json={"email": "ops@acme.example.com", "role": "admin"},
        headers=acme.headers,
    )
    assert other.status_code == 201
    admin = bearer(issuer.token("ops@acme.example.com", now=kupe.clock.now()))
    status, error = await delete(admin, confirm="acme", cascade=True)
    assert (status, error["code"]) == (403, "owner_required")  # an admin, not the owner

    status, error = await delete(owner, confirm="ACME", cascade=True)
    assert (status, error["field"]) == (400, "confirm")
    kupe.clock.advance(61)
    status, error = await delete(owner, confirm="acme")
    assert (status, error["code"]) == (409, "clusters_exist")
    status, error = await delete(owner, confirm="acme", cascade=True)
    assert (status, error["code"]) == (429, "RATE_LIMITED")  # one request a minute

    kupe.clock.advance(61)
    status, body = await delete(owner, confirm="acme", cascade=True)
    assert status == 202, body
    assert body["name"] == "acme"
    assert body["status"]["phase"] == "Terminating"  # type: ignore[index]
    # Keys and members stop working at once, but for reading the tenant.
    reading = await kupe.client.get(url, headers=acme.headers)
    assert reading.json()["status"]["phase"] == "Terminating"
    refused = await kupe.client.get(f"{url}/clusters", headers=acme.headers)
    assert (refused.status_code, refused.json()["code"]) == (409, "TENANT_TERMINATING")
    kupe.clock.advance(61)
    status, error = await delete(owner, confirm="acme", cascade=True)
    assert (status, error["code"]) == (409, "already_terminating")

    await kupe.run_for(5)  # the cluster is torn down, then the tenant removed
    gone = await kupe.client.get(url, headers=owner)
    assert gone.status_code == 404
    assert (await kupe.client.get(url, headers=acme.headers)).status_code == 401
    # Another tenant is untouched, and the name is free again.
    globex_members = await kupe.client.get("/api/v1/tenants/globex", headers=owner)
    assert globex_members.status_code == 403
    again = await kupe.tenant("acme")
    assert (await kupe.client.get(url, headers=again.headers)).json()["status"]["phase"] == "Active"


async def test_a_tenant_without_clusters_goes_at_once(kupe: Kupe, issuer: Issuer) -> None:
    await kupe.tenant("acme")
    owner = bearer(issuer.token(OWNER, now=kupe.clock.now()))
    response = await kupe.client.request(
        "DELETE", "/api/v1/tenants/acme", json={"confirm": "acme", "cascade": False}, headers=owner
    )
    assert response.status_code == 202, response.text
    await kupe.step()
    assert (await kupe.client.get("/api/v1/tenants/acme", headers=owner)).status_code == 404


async def test_the_body_is_required_and_strict(kupe: Kupe, issuer: Issuer) -> None:
    acme: TenantCreds = await kupe.tenant("acme")
    owner = bearer(issuer.token(OWNER, now=kupe.clock.now()))
    for body in (None, {"confirm": "acme", "cascade": "yes"}, {"confirm": "acme", "extra": 1}):
        response = await kupe.client.request("DELETE", acme.url(), json=body, headers=owner)
        assert response.status_code == 400, response.text
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).json()["status"][
        "phase"
    ] == "Active"
