"""Members' OIDC access tokens (§1 Auth): signature against the issuer's JWKS served on
loopback, issuer, audience, expiry; the member's role applies."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError
from sqlalchemy import text

from kupe.server.settings import Settings
from tests.support.harness import Kupe, running_kupe, test_settings
from tests.support.oidc import AUDIENCE, Issuer, new_key, serve_issuer

OWNER = "admin@acme.example.com"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with serve_issuer() as running:
        yield running


@pytest.fixture
async def kupe_oidc(database_url: str, tmp_path: Path, issuer: Issuer) -> AsyncIterator[Kupe]:
    settings = test_settings(
        tmp_path,
        database_url,
        oidc_issuer=issuer.url,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=issuer.jwks_url,
    )
    async with running_kupe(settings) as kupe:
        await kupe.tenant("acme")
        await kupe.tenant("globex")
        for email, role in (("ro@acme.example.com", "readonly"), ("Ops@Acme.Example.com", "admin")):
            response = await kupe.client.post(
                "/api/v1/tenants/acme/members",
                json={"email": email, "role": role},
                headers=await _admin_headers(kupe),
            )
            assert response.status_code == 201
        yield kupe


async def _admin_headers(kupe: Kupe) -> dict[str, str]:
    return {"Authorization": f"Bearer {await kupe.api_key('acme', 'admin')}"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _get_tenant(kupe: Kupe, token: str, tenant: str = "acme") -> httpx.Response:
    return await kupe.client.get(f"/api/v1/tenants/{tenant}", headers=_bearer(token))


async def test_member_token_reads_with_the_members_role(kupe_oidc: Kupe, issuer: Issuer) -> None:
    kupe = kupe_oidc
    now = kupe.clock.now()
    owner = issuer.token(OWNER, now=now)
    response = await _get_tenant(kupe, owner)
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "acme"

    readonly = issuer.token("ro@acme.example.com", now=now)
    assert (await _get_tenant(kupe, readonly)).status_code == 200
    denied = await kupe.client.post(
        "/api/v1/tenants/acme/clusters",
        json={"name": "web", "displayName": "Web", "type": "shared"},
        headers=_bearer(readonly),
    )
    assert denied.status_code == 403
    assert denied.json()["code"] == "ADMIN_REQUIRED"
    no_keys = await kupe.client.get("/api/v1/tenants/acme/apikeys", headers=_bearer(readonly))
    assert no_keys.status_code == 403


async def test_admin_member_creates_keys_as_itself(kupe_oidc: Kupe, issuer: Issuer) -> None:
    kupe = kupe_oidc
    # The member was added as Ops@Acme...; the token's email case does not matter either.
    token = issuer.token("OPS@acme.example.COM", now=kupe.clock.now())
    response = await kupe.client.post(
        "/api/v1/tenants/acme/apikeys",
        json={"displayName": "from sso", "role": "readonly"},
        headers=_bearer(token),
    )
    assert response.status_code == 201, response.text
    assert response.json()["createdBy"] == "ops@acme.example.com"


async def test_api_keys_still_work_alongside_oidc(kupe_oidc: Kupe) -> None:
    headers = await _admin_headers(kupe_oidc)
    assert (await kupe_oidc.client.get("/api/v1/tenants/acme", headers=headers)).status_code == 200


async def test_member_cannot_remove_itself_but_may_remove_others(
    kupe_oidc: Kupe, issuer: Issuer
) -> None:
    kupe = kupe_oidc
    token = issuer.token("ops@acme.example.com", now=kupe.clock.now())
    own = await kupe.client.delete(
        "/api/v1/tenants/acme/members/Ops%40acme.example.com", headers=_bearer(token)
    )
    assert own.status_code == 400
    assert "yourself" in own.json()["error"]
    other = await kupe.client.delete(
        "/api/v1/tenants/acme/members/ro%40acme.example.com", headers=_bearer(token)
    )
    assert other.status_code == 204


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong issuer", "issuer"),
        ("wrong audience", "audience"),
        ("expired", "expired"),
        ("not yet valid", "not valid yet"),
        ("bad signature", "signature"),
        ("unknown kid", "known key"),
        ("no email", "email"),
        ("unverified email", "verified"),
        ("hs256 with the public key", "algorithm"),
        ("alg none", "algorithm"),
        ("garbage", "Invalid"),
        ("no exp", "Invalid token"),
    ],
)
async def test_bad_tokens_are_401(kupe_oidc: Kupe, issuer: Issuer, case: str, message: str) -> None:
    now = kupe_oidc.clock.now()
    tokens: dict[str, Any] = {
        "wrong issuer": lambda: issuer.token(OWNER, now=now, iss="https://evil.example.com"),
        "wrong audience": lambda: issuer.token(OWNER, now=now, aud="another-app"),
        "expired": lambda: issuer.token(OWNER, now=now, lifetime=-60),
        "not yet valid": lambda: issuer.token(OWNER, now=now, nbf=int(now.timestamp()) + 600),
        "bad signature": lambda: issuer.token(OWNER, now=now, key=new_key()),
        "unknown kid": lambda: issuer.token(OWNER, now=now, headers={"kid": "other"}),
        "no email": lambda: issuer.token(None, now=now),
        "unverified email": lambda: issuer.token(OWNER, now=now, email_verified=False),
        "hs256 with the public key": lambda: _hs256_with_public_key(issuer, now.timestamp()),
        "alg none": lambda: _unsigned(issuer, now.timestamp()),
        "garbage": lambda: "abc.def.ghi",
        "no exp": lambda: _without_exp(issuer, now.timestamp()),
    }
    response = await _get_tenant(kupe_oidc, tokens[case]())
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHORIZED"
    assert message.lower() in response.json()["error"].lower()
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expiry_follows_the_server_clock(kupe_oidc: Kupe, issuer: Issuer) -> None:
    kupe = kupe_oidc
    token = issuer.token(OWNER, now=kupe.clock.now(), lifetime=120)
    assert (await _get_tenant(kupe, token)).status_code == 200
    kupe.clock.advance(120 + 31)  # past exp and the 30 s leeway
    assert (await _get_tenant(kupe, token)).status_code == 401


async def test_unknown_email_or_other_tenant_is_403(kupe_oidc: Kupe, issuer: Issuer) -> None:
    now = kupe_oidc.clock.now()
    stranger = await _get_tenant(kupe_oidc, issuer.token("stranger@example.com", now=now))
    assert stranger.status_code == 403
    assert stranger.json() == {"error": "Not a member of this tenant", "code": "NOT_A_MEMBER"}
    other = await _get_tenant(kupe_oidc, issuer.token(OWNER, now=now), tenant="globex")
    assert other.status_code == 403
    assert other.json()["code"] == "NOT_A_MEMBER"
    assert "globex" not in other.text
    missing = await _get_tenant(kupe_oidc, issuer.token(OWNER, now=now), tenant="nowhere")
    assert missing.status_code == 403


async def test_removed_member_loses_access_at_once(kupe_oidc: Kupe, issuer: Issuer) -> None:
    kupe = kupe_oidc
    token = issuer.token("ro@acme.example.com", now=kupe.clock.now())
    assert (await _get_tenant(kupe, token)).status_code == 200
    removed = await kupe.client.delete(
        "/api/v1/tenants/acme/members/ro%40acme.example.com", headers=await _admin_headers(kupe)
    )
    assert removed.status_code == 204
    assert (await _get_tenant(kupe, token)).status_code == 403


async def test_jwks_is_cached(kupe_oidc: Kupe, issuer: Issuer) -> None:
    token = issuer.token(OWNER, now=kupe_oidc.clock.now())
    for _ in range(5):
        assert (await _get_tenant(kupe_oidc, token)).status_code == 200
    assert issuer.fetches == 1


async def test_issuer_discovery_without_a_jwks_url(
    database_url: str, tmp_path: Path, issuer: Issuer
) -> None:
    settings = test_settings(tmp_path, database_url, oidc_issuer=issuer.url, oidc_audience=AUDIENCE)
    async with running_kupe(settings) as kupe:
        await kupe.tenant("acme")
        response = await _get_tenant(kupe, issuer.token(OWNER, now=kupe.clock.now()))
        assert response.status_code == 200, response.text


async def test_unreachable_issuer_is_503(database_url: str, tmp_path: Path) -> None:
    with serve_issuer() as gone:
        url, token_issuer = gone.url, gone
    settings = test_settings(
        tmp_path,
        database_url,
        oidc_issuer=url,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=f"{url}/jwks.json",
    )
    async with running_kupe(settings) as kupe:
        await kupe.tenant("acme")
        response = await _get_tenant(kupe, token_issuer.token(OWNER, now=kupe.clock.now()))
        assert response.status_code == 503
        assert response.json()["code"] == "SERVICE_UNAVAILABLE"
        assert response.headers["retry-after"] == "5"


def test_issuer_without_audience_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="KUPE_OIDC_AUDIENCE"):
        Settings(data_dir=tmp_path, oidc_issuer="https://id.example.com")


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(issuer: Issuer, now: float) -> dict[str, Any]:
    return {"iss": issuer.url, "aud": AUDIENCE, "exp": int(now) + 300, "email": OWNER}


def _hs256_with_public_key(issuer: Issuer, now: float) -> str:
    """The classic algorithm-confusion forgery: HMAC keyed with the public key."""
    import hashlib
    import hmac

    public = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'kid': issuer.kid})}.{_b64(_claims(issuer, now))}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).decode().rstrip('=')}"


def _unsigned(issuer: Issuer, now: float) -> str:
    return f"{_b64({'alg': 'none', 'kid': issuer.kid})}.{_b64(_claims(issuer, now))}."


def _without_exp(issuer: Issuer, now: float) -> str:
    claims = {k: v for k, v in _claims(issuer, now).items() if k != "exp"}
    return jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": issuer.kid})


async def test_a_members_cluster_token_follows_the_member(kupe_oidc: Kupe, issuer: Issuer) -> None:
    kupe = kupe_oidc
    admin = await _admin_headers(kupe)
    created = await kupe.client.post(
        "/api/v1/tenants/acme/clusters",
        json={"name": "web", "displayName": "Web", "type": "shared"},
        headers=admin,
    )
    assert created.status_code == 201
    await kupe.run_for(9)
    async with kupe.runtime.db.read() as session:
        web = await session.scalar(text("SELECT id FROM clusters WHERE name = 'web'"))
    ops = issuer.token("ops@acme.example.com", now=kupe.clock.now())
    issued = await kupe.client.post(
        "/api/v1/tenants/acme/clusters/web/credentials", json={}, headers=_bearer(ops)
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]

    async def reviewed() -> dict[str, Any]:
        response = await kupe.client.post(
            f"/internal/v1/clusters/{web}/tokenreview", json={"spec": {"token": token}}
        )
        status: dict[str, Any] = response.json()["status"]
        return status

    first = await reviewed()
    assert first["user"] == {
        "username": "kupe:member:ops@acme.example.com",
        "uid": first["user"]["uid"],
        "groups": ["kupe:admin"],
    }
    demoted = await kupe.client.patch(
        "/api/v1/tenants/acme/members/ops%40acme.example.com",
        json={"role": "readonly"},
        headers=admin,
    )
    assert demoted.status_code == 200
    assert (await reviewed())["user"]["groups"] == ["kupe:readonly"]
    removed = await kupe.client.delete(
        "/api/v1/tenants/acme/members/ops%40acme.example.com", headers=admin
    )
    assert removed.status_code == 204
    assert (await reviewed())["authenticated"] is False
