"""API keys (§5): create (raw key once), list (metadata only), revoke (at once), expiry,
lastUsedAt without a write per request, and where the raw key must never appear."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text

from tests.support.harness import Kupe, TenantCreds

KEY = re.compile(r"\Akupe_([a-z0-9]{8})_[A-Za-z0-9_-]{43,}\Z")


async def _create(kupe: Kupe, creds: TenantCreds, **body: Any) -> httpx.Response:
    payload = {"displayName": "ci", "role": "readonly", **body}
    return await kupe.client.post(creds.url("/apikeys"), json=payload, headers=creds.headers)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def _api_key_writes(kupe: Kupe) -> Iterator[list[str]]:
    """Collect every UPDATE of api_keys the app sends to the database."""
    seen: list[str] = []
    engine = kupe.runtime.db.engine.sync_engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_create_returns_the_raw_key_once(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    caller_id = "ak-" + acme.key.split("_")[1]
    response = await _create(kupe, acme, displayName="deploy bot", role="admin")
    assert response.status_code == 201, response.text
    body = response.json()
    match = KEY.match(body["key"])
    assert match is not None
    assert body["id"] == f"ak-{match.group(1)}"
    assert body["displayName"] == "deploy bot"
    assert body["role"] == "admin"
    assert body["createdBy"] == f"apikey:{caller_id}"
    assert body["createdAt"] == "2026-04-06T12:00:00Z"
    assert "expiresAt" not in body
    assert "lastUsedAt" not in body
    assert re.fullmatch(r'"[0-9]+"', response.headers["etag"])
    assert response.headers["cache-control"] == "no-store"

    # The new key works, for its own tenant.
    got = await kupe.client.get(acme.url(), headers=_bearer(body["key"]))
    assert got.status_code == 200

    # The raw key is never shown again and never stored.
    listed = await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)
    assert body["key"] not in listed.text
    async with kupe.runtime.db.read() as session:
        rows = (await session.execute(text("SELECT * FROM api_keys"))).all()
    dump = repr(rows)
    assert body["key"] not in dump
    assert acme.key not in dump
    assert body["key"].split("_", 2)[2] not in dump


async def test_raw_key_never_reaches_the_logs(
    kupe: Kupe, capsys: pytest.CaptureFixture[str]
) -> None:
    acme = await kupe.tenant()
    created = (await _create(kupe, acme, role="admin")).json()
    await kupe.client.get(acme.url("/apikeys"), headers=_bearer(created["key"]))
    await kupe.client.get(acme.url("/nope"), headers=_bearer(created["key"] + "x"))
    captured = capsys.readouterr()
    for secret in (created["key"], acme.key):
        assert secret not in captured.out
        assert secret not in captured.err


async def test_create_validation(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"expiresAt": "2026-04-06T11:59:59Z"}, "expiresAt"),
        ({"expiresAt": "2026-04-06T12:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2027-01-01T00:00:00"}, "expiresAt"),
        ({"expiresAt": "next week"}, "expiresAt"),
        ({"role": "owner"}, "role"),
        ({"displayName": ""}, "displayName"),
        ({"displayName": "   "}, "displayName"),
        ({"key": "kupe_aaaaaaaa_" + "a" * 43}, "key"),
        ({"createdBy": "someone"}, "createdBy"),
    ]
    for body, field in cases:
        response = await _create(kupe, acme, **body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "VALIDATION_FAILED"
        assert response.json()["field"] == field, (body, response.json())
    missing = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "x"}, headers=acme.headers
    )
    assert missing.status_code == 400
    assert missing.json()["field"] == "role"


async def test_expiring_key_works_until_it_expires(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    response = await _create(kupe, acme, expiresAt="2026-04-06T13:00:00+01:00")
    assert response.status_code == 400, "13:00+01:00 is 12:00Z: not in the future"
    response = await _create(kupe, acme, expiresAt="2026-04-06T12:30:00Z")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["expiresAt"] == "2026-04-06T12:30:00Z"
    assert (await kupe.client.get(acme.url(), headers=_bearer(body["key"]))).status_code == 200
    kupe.clock.advance(30 * 60)
    expired = await kupe.client.get(acme.url(), headers=_bearer(body["key"]))
    assert expired.status_code == 401
    assert expired.json()["code"] == "UNAUTHORIZED"
    assert "expired" in expired.json()["error"]
    assert expired.headers["www-authenticate"] == "Bearer"
    # An expired key is still listed (so it can be cleaned up) and can be revoked.
    listed = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()
    assert body["id"] in [k["id"] for k in listed["items"]]
    revoked = await kupe.client.delete(acme.url(f"/apikeys/{body['id']}"), headers=acme.headers)
    assert revoked.status_code == 204


async def test_list_is_metadata_only_sorted_and_pages(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for index in range(3):
        assert (await _create(kupe, acme, displayName=f"key {index}")).status_code == 201
    response = await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)
    assert response.status_code == 200
    items = response.json()["items"]
    assert len(items) == 4
    assert [k["id"] for k in items] == sorted(k["id"] for k in items)
    for item in items:
        assert set(item) <= {
            "id",
            "displayName",
            "role",
            "createdBy",
            "createdAt",
            "expiresAt",
            "lastUsedAt",
        }
    first = await kupe.client.get(acme.url("/apikeys?limit=3"), headers=acme.headers)
    page = first.json()
    assert [k["id"] for k in page["items"]] == [k["id"] for k in items[:3]]
    token = page["continue"]
    rest = await kupe.client.get(
        acme.url("/apikeys"), params={"limit": 3, "continue": token}, headers=acme.headers
    )
    assert [k["id"] for k in rest.json()["items"]] == [items[3]["id"]]
    assert "continue" not in rest.json()


async def test_only_admins_manage_keys(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    readonly = TenantCreds("acme", await kupe.api_key("acme", "readonly"))
    some_id = "ak-" + acme.key.split("_")[1]
    for response in (
        await kupe.client.get(readonly.url("/apikeys"), headers=readonly.headers),
        await _create(kupe, readonly),
        await kupe.client.delete(readonly.url(f"/apikeys/{some_id}"), headers=readonly.headers),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "ADMIN_REQUIRED"
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 200


async def test_revoke_is_immediate_and_idempotent_only_once(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = (await _create(kupe, acme, role="admin")).json()
    key_id = created["id"]
    assert (await kupe.client.get(acme.url(), headers=_bearer(created["key"]))).status_code == 200

    revoked = await kupe.client.delete(acme.url(f"/apikeys/{key_id}"), headers=acme.headers)
    assert revoked.status_code == 204
    assert revoked.content == b""
    after = await kupe.client.get(acme.url(), headers=_bearer(created["key"]))
    assert after.status_code == 401
    assert "revoked" in after.json()["error"]
    again = await kupe.client.delete(acme.url(f"/apikeys/{key_id}"), headers=acme.headers)
    assert again.status_code == 404
    assert again.json()["code"] == "NOT_FOUND"
    listed = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()
    assert key_id not in [k["id"] for k in listed["items"]]


async def test_revoke_bad_or_unknown_id(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for bad in ("nope", "ak-UPPER123", "ak-1234567", "ak-123456789", "kupe_abcdefgh"):
        response = await kupe.client.delete(acme.url(f"/apikeys/{bad}"), headers=acme.headers)
        assert response.status_code == 400, bad
        assert response.json()["code"] == "VALIDATION_FAILED"
    unknown = await kupe.client.delete(acme.url("/apikeys/ak-00000000"), headers=acme.headers)
    assert unknown.status_code == 404


async def test_a_key_can_revoke_itself(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    own_id = "ak-" + acme.key.split("_")[1]
    response = await kupe.client.delete(acme.url(f"/apikeys/{own_id}"), headers=acme.headers)
    assert response.status_code == 204
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 401


async def test_another_tenants_key_cannot_be_revoked(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    globex_id = "ak-" + globex.key.split("_")[1]
    response = await kupe.client.delete(acme.url(f"/apikeys/{globex_id}"), headers=acme.headers)
    assert response.status_code == 404
    assert (await kupe.client.get(globex.url(), headers=globex.headers)).status_code == 200


async def test_last_used_at_is_written_at_most_once_a_minute(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = (await _create(kupe, acme)).json()
    key, key_id = created["key"], created["id"]

    async def last_used() -> str | None:
        items = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()
        return next(k.get("lastUsedAt") for k in items["items"] if k["id"] == key_id)

    assert await last_used() is None
    with _api_key_writes(kupe) as writes:
        for _ in range(5):
            assert (await kupe.client.get(acme.url(), headers=_bearer(key))).status_code == 200
        kupe.clock.advance(30)
        for _ in range(5):
            assert (await kupe.client.get(acme.url(), headers=_bearer(key))).status_code == 200
    # One write for this key (the admin key listing above adds at most one of its own).
    assert len(writes) == 1, writes
    assert await last_used() == "2026-04-06T12:00:00Z"

    kupe.clock.advance(31)
    with _api_key_writes(kupe) as writes:
        await kupe.client.get(acme.url("/clusters"), headers=_bearer(key))
    assert len(writes) == 1
    assert await last_used() == "2026-04-06T12:01:01Z"


async def test_last_used_at_counts_failed_requests_too(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = (await _create(kupe, acme, role="admin")).json()
    missing = await kupe.client.get(acme.url("/clusters/nope"), headers=_bearer(created["key"]))
    assert missing.status_code == 404
    items = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()["items"]
    assert next(k for k in items if k["id"] == created["id"])["lastUsedAt"] is not None


async def test_operator_keys_and_expiry_through_the_service(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    async with kupe.runtime.db.write() as session:
        tenant = await kupe.runtime.services.tenants.tenant(session, "acme")
        issued = await kupe.runtime.services.tenants.issue_api_key(
            session,
            tenant.id,
            role="readonly",
            display_name="short",
            created_by="operator",
            expires_at=kupe.clock.now() + timedelta(seconds=10),
        )
    assert (await kupe.client.get(acme.url(), headers=_bearer(issued.raw))).status_code == 200
    kupe.clock.advance(10)
    assert (await kupe.client.get(acme.url(), headers=_bearer(issued.raw))).status_code == 401


async def test_a_retried_create_with_its_idempotency_key_mints_no_second_key(kupe: Kupe) -> None:
    """The replay answers the same id and the same raw key; a different body with the key is
    refused; only one key exists afterwards."""
    acme = await kupe.tenant()
    retry = {**acme.headers, "Idempotency-Key": "mint-ci-1"}
    body = {"displayName": "ci", "role": "admin"}
    first = await kupe.client.post(acme.url("/apikeys"), json=body, headers=retry)
    second = await kupe.client.post(acme.url("/apikeys"), json=body, headers=retry)
    assert first.status_code == second.status_code == 201, second.text
    assert first.json() == second.json()
    assert KEY.match(second.json()["key"])
    other = await kupe.client.post(
        acme.url("/apikeys"), json={**body, "role": "readonly"}, headers=retry
    )
    assert other.status_code == 409
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    listed = (await kupe.client.get(acme.url("/apikeys"), headers=acme.headers)).json()["items"]
    assert [k["id"] for k in listed if k["displayName"] == "ci"] == [first.json()["id"]]
    # The raw key kept for the replay is sealed: it is nowhere in the database in the clear.
    async with kupe.runtime.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM idempotency_records"))).all()
    assert rows
    assert first.json()["key"] not in repr(rows)
