"""Rate limiting (§1): token buckets per client IP and per credential, 429 with an integer
Retry-After and the Kupe body, and exponential back-off after authentication failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.harness import Kupe, running_kupe, test_settings


@pytest.fixture
async def strict(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    """Tiny limits: 1 request/s with a burst of 3; back-off after 3 failed authentications."""
    settings = test_settings(
        tmp_path,
        database_url,
        rate_limit_rps=1,
        rate_limit_burst=3,
        auth_failure_allowance=3,
        auth_failure_window_seconds=60,
        auth_backoff_max_seconds=8,
    )
    async with running_kupe(settings) as kupe:
        yield kupe


@asynccontextmanager
async def client_from(kupe: Kupe, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=kupe.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://kupe.test") as client:
        yield client


def _assert_limited(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(retry_after)
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["error"]
    assert response.headers["x-request-id"]


async def test_ip_bucket_allows_a_burst_then_429_then_refills(strict: Kupe) -> None:
    async with client_from(strict, "10.0.0.1") as client:
        for _ in range(3):
            assert (await client.get("/api/v1/plans")).status_code == 200
        _assert_limited(await client.get("/api/v1/plans"), 1)
        strict.clock.advance(1)
        assert (await client.get("/api/v1/plans")).status_code == 200
        _assert_limited(await client.get("/api/v1/plans"), 1)
    # Another address has its own bucket.
    async with client_from(strict, "10.0.0.2") as other:
        assert (await other.get("/api/v1/plans")).status_code == 200


async def test_retry_after_is_whole_seconds_rounded_up(database_url: str, tmp_path: Path) -> None:
    settings = test_settings(tmp_path, database_url, rate_limit_rps=0.25, rate_limit_burst=1)
    async with running_kupe(settings) as kupe, client_from(kupe, "10.0.0.9") as client:
        assert (await client.get("/api/v1/plans")).status_code == 200
        _assert_limited(await client.get("/api/v1/plans"), 4)
        kupe.clock.advance(1.5)
        _assert_limited(await client.get("/api/v1/plans"), 3)


async def test_credential_bucket_spans_addresses(strict: Kupe) -> None:
    acme = await strict.tenant()
    other_key = await strict.api_key("acme", "readonly")
    for ip in ("10.0.1.1", "10.0.1.2", "10.0.1.3"):
        async with client_from(strict, ip) as client:
            assert (await client.get(acme.url(), headers=acme.headers)).status_code == 200
    async with client_from(strict, "10.0.1.4") as client:
        _assert_limited(await client.get(acme.url(), headers=acme.headers), 1)
        # The same address with another credential is not limited by the first one's bucket.
        other = {"Authorization": f"Bearer {other_key}"}
        assert (await client.get(acme.url(), headers=other)).status_code == 200


async def test_service_endpoints_are_never_limited(strict: Kupe) -> None:
    async with client_from(strict, "10.0.2.1") as client:
        for _ in range(10):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200


async def test_failed_authentication_backs_off_exponentially(strict: Kupe) -> None:
    acme = await strict.tenant()
    bad = {"Authorization": "Bearer kupe_aaaaaaaa_" + "b" * 43}

    async def attempt(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
        strict.clock.advance(1)  # keep the plain request buckets out of the picture
        return await client.get(acme.url(), headers=headers)

    async with client_from(strict, "10.0.3.1") as client:
        for _ in range(3):
            assert (await attempt(client, bad)).status_code == 401
        # The 4th failure starts the back-off: 1 s, then 2 s, 4 s, capped at 8 s.
        assert (await attempt(client, bad)).status_code == 401
        waits = []
        for _ in range(5):
            strict.clock.advance(0.5)
            refused = await client.get(acme.url(), headers=bad)
            _assert_limited(refused, int(refused.headers["retry-after"]))
            waits.append(int(refused.headers["retry-after"]))
            strict.clock.advance(int(refused.headers["retry-after"]))
            assert (await client.get(acme.url(), headers=bad)).status_code == 401
        assert waits == [1, 2, 4, 8, 8], waits
        # A credential nobody has seen succeed is refused too while the address is backing off.
        strict.clock.advance(0.5)
        fresh = {"Authorization": f"Bearer {await strict.api_key('acme', 'readonly')}"}
        assert (await client.get(acme.url(), headers=fresh)).status_code == 429
        # Public routes stay open.
        assert (await client.get("/api/v1/plans")).status_code == 200

    # Other addresses are not affected.
    async with client_from(strict, "10.0.3.2") as other:
        assert (await other.get(acme.url(), headers=acme.headers)).status_code == 200


async def test_known_good_credential_passes_an_address_back_off(strict: Kupe) -> None:
    acme = await strict.tenant()
    bad = {"Authorization": "Bearer not-a-key"}
    async with client_from(strict, "10.0.4.1") as client:
        assert (await client.get(acme.url(), headers=acme.headers)).status_code == 200
        for _ in range(4):
            strict.clock.advance(1)
            assert (await client.get(acme.url(), headers=bad)).status_code == 401
        strict.clock.advance(0.5)
        assert (await client.get(acme.url(), headers=bad)).status_code == 429
        # The colleague behind the same address, whose key worked a moment ago, carries on.
        assert (await client.get(acme.url(), headers=acme.headers)).status_code == 200


async def test_failures_are_forgotten_after_a_quiet_window(strict: Kupe) -> None:
    acme = await strict.tenant()
    async with client_from(strict, "10.0.5.1") as client:
        for _ in range(3):
            strict.clock.advance(1)
            assert (await client.get(acme.url())).status_code == 401
        strict.clock.advance(61)
        for _ in range(3):
            strict.clock.advance(1)
            assert (await client.get(acme.url())).status_code == 401
        strict.clock.advance(1)
        assert (await client.get(acme.url())).status_code == 401, "count restarted at zero"


async def test_403_and_404_are_not_authentication_failures(strict: Kupe) -> None:
    acme = await strict.tenant("acme")
    globex = await strict.tenant("globex")
    async with client_from(strict, "10.0.6.1") as client:
        for _ in range(6):
            strict.clock.advance(1)
            response = await client.get(globex.url(), headers=acme.headers)
            assert response.status_code == 403
        strict.clock.advance(1)
        assert (await client.get(acme.url(), headers=acme.headers)).status_code == 200


async def test_defaults_do_not_bother_a_busy_client(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    statuses: dict[int, int] = {}
    calls: list[Any] = []
    for index in range(150):
        calls.append(kupe.client.get(acme.url(), headers=acme.headers))
        calls.append(kupe.client.get("/api/v1/plans"))
        if index % 10 == 0:
            calls.append(kupe.client.get(acme.url(), headers={"Authorization": "Bearer wrong"}))
    for call in calls:
        response = await call
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    assert 429 not in statuses, statuses
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 200
