"""The SDK's retry policy, driven by a transport double that answers 429/503 before a real answer.

The double stands in for the network only; what is checked is how many attempts the client
makes, how long it waits between them, and which requests it dares to resend.
"""

from __future__ import annotations

import json
import random

import httpx
import pytest

from kupe.sdk import (
    AsyncClient,
    Client,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    TransportError,
)

PLAN = {
    "name": "pro",
    "displayName": "Pro",
    "platformFee": "49.00",
    "maxClusters": 5,
    "observabilityPool": {},
    "dedicatedClusters": False,
    "defaultClusterResources": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
}
CLUSTER = {
    "name": "production",
    "displayName": "Production",
    "type": "shared",
    "version": "1.32",
    "resources": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
    "resourceVersion": "7",
    "generation": 1,
    "createdAt": "2026-04-06T12:00:00Z",
    "status": {"phase": "Pending", "observedGeneration": 0, "conditions": []},
}


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": f"{code} happened", "code": code}, headers=headers)


class Script:
    """Answers requests from a list, recording each request it saw."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def sync_client(script: Script, sleeps: list[float], **kwargs: object) -> Client:
    return Client(
        "http://kupe.test",
        api_key="kupe_test_key",
        tenant="acme",
        transport=httpx.MockTransport(script),
        sleep=sleeps.append,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )


def test_429_is_retried_after_the_retry_after_the_server_asked_for() -> None:
    script = Script(
        error(429, "RATE_LIMITED", {"Retry-After": "3"}),
        error(429, "RATE_LIMITED", {"Retry-After": "1"}),
        httpx.Response(200, json=PLAN),
    )
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client:
        plan = client.plans.get("pro")
    assert plan.name == "pro"
    assert len(script.requests) == 3
    assert sleeps == [3.0, 1.0]


def test_503_is_retried_with_growing_jittered_backoff() -> None:
    script = Script(
        error(503, "SERVICE_UNAVAILABLE"),
        error(503, "SERVICE_UNAVAILABLE"),
        error(503, "SERVICE_UNAVAILABLE"),
        httpx.Response(200, json=PLAN),
    )
    sleeps: list[float] = []
    policy = RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=30.0)
    with sync_client(script, sleeps, retry=policy) as client:
        client.plans.get("pro")
    assert len(script.requests) == 4
    # Attempt n waits between half and all of base * 2**n.
    for attempt, slept in enumerate(sleeps):
        ceiling = 2.0**attempt
        assert ceiling / 2 <= slept <= ceiling
    assert len(set(sleeps)) == 3


def test_every_attempt_carries_the_same_request_id_and_the_credential() -> None:
    script = Script(error(503, "SERVICE_UNAVAILABLE"), httpx.Response(200, json=PLAN))
    with sync_client(script, []) as client:
        client.plans.get("pro")
    ids = {r.headers["x-request-id"] for r in script.requests}
    assert len(ids) == 1
    assert all(r.headers["authorization"] == "Bearer kupe_test_key" for r in script.requests)


def test_retries_stop_at_the_limit_and_raise_the_last_error() -> None:
    script = Script(*[error(429, "RATE_LIMITED", {"Retry-After": "2"}) for _ in range(3)])
    sleeps: list[float] = []
    with (
        sync_client(script, sleeps, retry=RetryPolicy(max_retries=2)) as client,
        pytest.raises(RateLimited) as caught,
    ):
        client.plans.list()
    assert len(script.requests) == 3
    assert sleeps == [2.0, 2.0]
    assert caught.value.status == 429
    assert caught.value.retry_after == 2.0


def test_a_huge_retry_after_is_capped() -> None:
    script = Script(
        error(429, "RATE_LIMITED", {"Retry-After": "3600"}), httpx.Response(200, json=PLAN)
    )
    sleeps: list[float] = []
    with sync_client(script, sleeps, retry=RetryPolicy(retry_after_max=20)) as client:
        client.plans.get("pro")
    assert sleeps == [20.0]


def test_create_sends_an_idempotency_key_and_is_retried_with_the_same_key_on_503() -> None:
    script = Script(error(503, "SERVICE_UNAVAILABLE"), httpx.Response(201, json=CLUSTER))
    with sync_client(script, []) as client:
        cluster = client.clusters.create("production", display_name="Production", type="shared")
    assert cluster.status.phase == "Pending"
    keys = [r.headers.get("idempotency-key") for r in script.requests]
    assert len(keys) == 2
    assert keys[0] is not None
    assert keys[0] == keys[1]
    assert json.loads(script.requests[1].content) == {
        "name": "production",
        "displayName": "Production",
        "type": "shared",
    }


def test_a_post_without_idempotency_key_is_not_resent_after_503() -> None:
    # Creating an API key has no Idempotency-Key: resending could issue two keys.
    script = Script(error(503, "SERVICE_UNAVAILABLE"))
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client, pytest.raises(ServiceUnavailable):
        client.apikeys.create(display_name="ci", role="readonly")
    assert len(script.requests) == 1
    assert sleeps == []


def test_a_patch_is_not_resent_after_a_read_timeout() -> None:
    script = Script(httpx.ReadTimeout("slow"))
    with sync_client(script, []) as client, pytest.raises(TransportError) as caught:
        client.clusters.update("production", version="1.33")
    assert len(script.requests) == 1
    assert caught.value.status == 0
    assert caught.value.request_id == script.requests[0].headers["x-request-id"]


def test_connection_errors_are_retried_even_for_posts() -> None:
    # A refused connection never reached the server, so nothing can have happened twice.
    script = Script(
        httpx.ConnectError("refused"),
        httpx.Response(
            201,
            json={
                "id": "ak-abcdefgh",
                "displayName": "ci",
                "role": "readonly",
                "createdBy": "apikey:ak-00000000",
                "createdAt": "2026-04-06T12:00:00Z",
                "key": "kupe_abcdefgh_" + "x" * 43,
            },
        ),
    )
    sleeps: list[float] = []
    with sync_client(script, sleeps) as client:
        created = client.apikeys.create(display_name="ci", role="readonly")
    assert created.key.startswith("kupe_abcdefgh_")
    assert len(script.requests) == 2
    assert len(sleeps) == 1


def test_429_is_retried_for_any_method() -> None:
    script = Script(
        error(429, "RATE_LIMITED", {"Retry-After": "0"}), httpx.Response(200, json=CLUSTER)
    )
    with sync_client(script, []) as client:
        client.clusters.update("production", version="1.33")
    assert [r.method for r in script.requests] == ["PATCH", "PATCH"]


def test_giving_up_on_connection_errors_raises_transport_error() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(3)])
    sleeps: list[float] = []
    with (
        sync_client(script, sleeps, retry=RetryPolicy(max_retries=2)) as client,
        pytest.raises(TransportError, match=r"Could not reach http://kupe\.test"),
    ):
        client.plans.list()
    assert len(script.requests) == 3
    assert len(sleeps) == 2


async def test_async_client_retries_429_and_503_honouring_retry_after() -> None:
    script = Script(
        error(429, "RATE_LIMITED", {"Retry-After": "4"}),
        error(503, "SERVICE_UNAVAILABLE", {"Retry-After": "2"}),
        httpx.Response(200, json={"items": [PLAN]}),
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with AsyncClient(
        "http://kupe.test", transport=httpx.MockTransport(script), sleep=sleep
    ) as client:
        plans = await client.plans.list()
    assert [p.name for p in plans] == ["pro"]
    assert len(script.requests) == 3
    assert sleeps == [4.0, 2.0]


async def test_async_post_without_key_is_not_resent() -> None:
    script = Script(error(503, "SERVICE_UNAVAILABLE"))
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncClient(
        "http://kupe.test", tenant="acme", transport=httpx.MockTransport(script), sleep=sleep
    ) as client:
        with pytest.raises(ServiceUnavailable):
            await client.members.add("a@example.com", role="admin")
    assert len(script.requests) == 1
    assert slept == []
