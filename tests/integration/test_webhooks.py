"""Signed webhooks (API §11) on SQLite and PostgreSQL, against a real receiver on loopback:
each subscribed event arrives once, in order, with a signature the SDK verifies; a 500 is
retried after the backoff; a hook failing for a day is disabled with a reason; two replicas
deliver each event once; URLs inside the installation's networks are refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from kupe.core.clock import FakeClock
from kupe.sdk import AsyncClient
from kupe.sdk import BadRequest as SDKBadRequest
from kupe.sdk import NotFound as SDKNotFound
from kupe.sdk.webhooks import SignatureError, verify
from kupe.server.db.models import Event, Webhook
from kupe.server.webhooks.events import webhook_type
from tests.support.harness import Kupe, TenantCreds, running_kupe, test_settings
from tests.support.webhook_receiver import Receiver, webhook_receiver

SEALING_KEY = "test-sealing-key-0123456789abcdefghijklmnop"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    settings = test_settings(
        tmp_path, database_url, webhook_allow_private=True, webhooks={"sealing_key": SEALING_KEY}
    )
    async with running_kupe(settings) as app:
        yield app


async def create_hook(
    kupe: Kupe, creds: TenantCreds, url: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    response = await kupe.client.post(
        creds.url("/webhooks"), json={"url": url, "events": events, **extra}, headers=creds.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def verified(kupe: Kupe, secret: str, receiver: Receiver) -> list[dict[str, Any]]:
    now = kupe.clock.now().timestamp()
    return [verify(secret, item.headers, item.body, now=now) for item in receiver.received]


async def expected_events(
    kupe: Kupe, tenant: str, patterns: tuple[str, ...], hook: dict[str, Any]
) -> list[str]:
    """The ids of the tenant's outbox events after the hook was made that it should get."""
    from kupe.server.webhooks.events import HookEvent, subscribed

    async with kupe.runtime.db.read() as session:
        tenant_id = (await kupe.runtime.services.tenants.tenant(session, tenant)).id
        rows = (
            await session.scalars(
                select(Event)
                .where(
                    Event.tenant_id == tenant_id,
                    Event.resource_version > int(hook["resourceVersion"]),
                )
                .order_by(Event.resource_version, Event.kind, Event.object_id)
            )
        ).all()
    out = []
    for row in rows:
        kind = webhook_type(row.kind, row.type, row.reason)
        if kind is not None and subscribed(patterns, kind):
            out.append(
                HookEvent(
                    row.resource_version,
                    row.kind,
                    row.object_id,
                    kind,
                    tenant,
                    row.object,
                    row.actor,
                    row.time,
                ).id
            )
    return out


async def test_each_event_arrives_once_signed_and_in_order(kupe: Kupe, receiver: Receiver) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    hook = await create_hook(kupe, acme, receiver.url, ["cluster.*", "apikey.created"])
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    assert hook["status"] == {"disabled": False}
    assert hook["id"].startswith("wh-")
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    assert (await kupe.create_cluster(globex, "theirs")).status_code == 201
    key = await kupe.client.post(
        acme.url("/apikeys"), json={"displayName": "ci", "role": "admin"}, headers=acme.headers
    )
    assert key.status_code == 201
    await kupe.client.post(
        acme.url("/members"),
        json={"email": "x@acme.example.com", "role": "admin"},
        headers=acme.headers,
    )
    await kupe.run_for(12)
    assert await kupe.phase(acme, "web") == "Running"
    patched = await kupe.client.patch(
        acme.url("/clusters/web"), json={"resources": {"cpu": "2"}}, headers=acme.headers
    )
    assert patched.status_code == 200, patched.text
    await kupe.run_for(8)
    assert (await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers)).is_success
    await kupe.run_for(8)
    await kupe.step(2)

    events = verified(kupe, secret, receiver)
    ids = [event["id"] for event in events]
    assert ids == await expected_events(kupe, "acme", ("cluster.*", "apikey.created"), hook)
    assert len(set(ids)) == len(ids)
    types = [event["type"] for event in events]
    assert types[0] == "cluster.created"
    assert types[-1] == "cluster.deleted"
    assert {"cluster.phase_changed", "cluster.updated", "apikey.created"} <= set(types)
    assert "member.added" not in types
    assert {event["tenant"] for event in events} == {"acme"}
    assert [item.headers["Kupe-Event-Id"] for item in receiver.received] == ids
    assert {item.path for item in receiver.received} == {"/hooks/kupe"}
    running = next(e for e in events if e.get("reason") == "Running")
    assert running["object"]["name"] == "web"
    assert running["actor"] == "system"
    assert "key" not in next(e for e in events if e["type"] == "apikey.created")["object"]
    # A receiver that checks refuses anything else.
    item = receiver.received[0]
    with pytest.raises(SignatureError):
        verify("whsec_wrong", item.headers, item.body, now=kupe.clock.now().timestamp())
    with pytest.raises(SignatureError):
        verify(secret, item.headers, item.body + b" ", now=kupe.clock.now().timestamp())
    with pytest.raises(SignatureError):
        verify(secret, item.headers, item.body, now=kupe.clock.now().timestamp() + 3600)

    deliveries = await kupe.client.get(
        acme.url(f"/webhooks/{hook['id']}/deliveries"), headers=acme.headers
    )
    assert [d["eventId"] for d in deliveries.json()["items"]] == ids[::-1]
    assert all(d["delivered"] and d["statusCode"] == 200 for d in deliveries.json()["items"])


async def test_a_500_is_retried_after_the_backoff(kupe: Kupe, receiver: Receiver) -> None:
    acme = await kupe.tenant("acme")
    hook = await create_hook(kupe, acme, receiver.url, ["cluster.created"], secret="s" * 24)
    receiver.script = [500]
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.step()
    assert [item.status for item in receiver.received] == [500]
    url = acme.url(f"/webhooks/{hook['id']}")
    failing = (await kupe.client.get(url, headers=acme.headers)).json()
    assert failing["status"]["failingSince"]
    assert not failing["status"]["disabled"]
    await kupe.step(4)  # the first retry waits 5 to 10 s
    assert len(receiver.received) == 1
    await kupe.step(6.5)
    assert [item.status for item in receiver.received] == [500, 200]
    first, second = receiver.received
    assert first.headers["Kupe-Event-Id"] == second.headers["Kupe-Event-Id"]
    assert first.body == second.body
    verify("s" * 24, second.headers, second.body, now=kupe.clock.now().timestamp())

    attempts = (await kupe.client.get(f"{url}/deliveries", headers=acme.headers)).json()["items"]
    assert [(a["attempt"], a["statusCode"], a["delivered"]) for a in attempts] == [
        (2, 200, True),
        (1, 500, False),
    ]
    assert attempts[1]["nextRetryAt"]
    assert "nextRetryAt" not in attempts[0]
    healthy = (await kupe.client.get(url, headers=acme.headers)).json()
    assert "failingSince" not in healthy["status"]
    page = await kupe.client.get(f"{url}/deliveries?limit=1", headers=acme.headers)
    rest = await kupe.client.get(
        f"{url}/deliveries", params={"continue": page.json()["continue"]}, headers=acme.headers
    )
    assert page.json()["items"] + rest.json()["items"] == attempts


async def test_a_hook_failing_for_a_day_is_disabled_with_a_reason(
    kupe: Kupe, receiver: Receiver
) -> None:
    acme = await kupe.tenant("acme")
    hook = await create_hook(kupe, acme, receiver.url, ["*"])
    receiver.always = 503
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.step()
    for _ in range(30):
        await kupe.step(3600)
    url = acme.url(f"/webhooks/{hook['id']}")
    status = (await kupe.client.get(url, headers=acme.headers)).json()["status"]
    assert status["disabled"] is True
    assert "24 h" in status["reason"]
    assert "HTTP 503" in status["reason"]
    tries = len(receiver.received)
    assert 20 <= tries <= 40
    assert {item.headers["Kupe-Event-Id"] for item in receiver.received} == {
        receiver.received[0].headers["Kupe-Event-Id"]
    }
    await kupe.step(3600)
    assert len(receiver.received) == tries  # a disabled hook is left alone

    receiver.always = None
    enabled = await kupe.client.patch(url, json={"enabled": True}, headers=acme.headers)
    assert enabled.status_code == 200
    assert enabled.json()["status"] == {"disabled": False}
    await kupe.step()
    # Delivery resumes with the event it gave up on, then the ones queued behind it.
    resumed = receiver.received[tries:]
    assert resumed
    assert {item.status for item in resumed} == {200}
    first_id = receiver.received[0].headers["Kupe-Event-Id"]
    assert resumed[0].headers["Kupe-Event-Id"] == first_id


async def test_two_replicas_deliver_each_event_once(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    clock = FakeClock()
    apps = []
    for name in ("a", "b"):
        settings = test_settings(
            tmp_path / name,
            database_url,
            webhook_allow_private=True,
            webhooks={"sealing_key": SEALING_KEY},
        )
        apps.append(running_kupe(settings, clock))
    async with apps[0] as first, apps[1] as second:
        acme = await first.tenant("acme", plan="enterprise")
        hook = await create_hook(second, acme, receiver.url, ["*"])
        for index in range(12):
            via = first if index % 2 else second
            assert (await via.create_cluster(acme, f"c{index}")).status_code == 201
        for _ in range(14):
            clock.advance(1)
            await asyncio.gather(
                first.runtime.reconciler.drain(), second.runtime.reconciler.drain()
            )
        ids = [event["id"] for event in verified(first, hook["secret"], receiver)]
        assert ids == await expected_events(first, "acme", ("*",), hook)
        assert len(ids) > 12 * 2


INTERNAL_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://10.1.2.3/",
    "http://192.168.0.10/",
    "http://172.16.5.4/",
    "http://[::1]/",
    "http://[fd12::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://0.0.0.0/",
    "http://100.64.0.1/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "https://user:pass@example.com/",
    "not a url",
]


async def test_internal_urls_unknown_types_and_bad_secrets_are_refused(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    async with running_kupe(test_settings(tmp_path, database_url)) as kupe:
        acme = await kupe.tenant("acme")
        problems = []
        for url in INTERNAL_URLS:
            response = await kupe.client.post(
                acme.url("/webhooks"), json={"url": url, "events": ["*"]}, headers=acme.headers
            )
            if response.status_code != 400 or response.json().get("field") != "url":
                problems.append(f"{url}: {response.status_code} {response.text}")
        assert not problems, "\n".join(problems)
        for body, field in (
            ({"url": "https://93.184.215.14/", "events": ["cluster.exploded"]}, "events"),
            ({"url": "https://93.184.215.14/", "events": ["nothing.*"]}, "events"),
            ({"url": "https://93.184.215.14/", "events": []}, "events"),
            ({"url": "https://93.184.215.14/", "events": ["*"], "secret": "short"}, "secret"),
            ({"url": "https://93.184.215.14/", "events": ["*"], "secret": "x y" * 8}, "secret"),
        ):
            response = await kupe.client.post(
                acme.url("/webhooks"), json=body, headers=acme.headers
            )
            assert response.status_code == 400, response.text
            assert response.json()["field"] == field, response.json()
        listed = await kupe.client.get(acme.url("/webhooks"), headers=acme.headers)
        assert listed.json()["items"] == []

    # Checked again at delivery: a receiver on loopback gets nothing without the setting.
    from kupe.server.webhooks.delivery import Deliverer

    deliverer = Deliverer(timeout=2, allow_private=False)
    try:
        attempt = await deliverer.send(receiver.url, "s" * 20, "ev-1", b"{}", 0)
    finally:
        await deliverer.aclose()
    assert not attempt.delivered
    assert attempt.status_code is None
    assert attempt.error == "url must not point to a loopback address"
    assert receiver.received == []


async def test_webhook_admin_routes(kupe: Kupe, receiver: Receiver) -> None:
    acme = await kupe.tenant("acme")
    globex = await kupe.tenant("globex")
    hook = await create_hook(kupe, acme, receiver.url, ["secret.*", "cluster.created"])
    url = acme.url(f"/webhooks/{hook['id']}")
    got = await kupe.client.get(url, headers=acme.headers)
    assert got.status_code == 200
    assert got.headers["etag"] == f'"{hook["resourceVersion"]}"'
    listed = await kupe.client.get(acme.url("/webhooks"), headers=acme.headers)
    for text in (got.text, listed.text):
        assert hook["secret"] not in text
        assert "secret" not in got.json()
    assert got.json()["events"] == ["secret.*", "cluster.created"]
    assert got.json()["createdBy"].startswith("apikey:")

    readonly = {"Authorization": f"Bearer {await kupe.api_key('acme', 'readonly')}"}
    for method in ("GET", "PATCH", "DELETE"):
        body = {"enabled": True} if method == "PATCH" else None
        denied = await kupe.client.request(method, url, headers=readonly, json=body)
        assert denied.status_code == 403, denied.text
    assert (await kupe.client.get(url, headers=readonly)).json()["code"] == "ADMIN_REQUIRED"
    theirs = await kupe.client.get(
        f"/api/v1/tenants/globex/webhooks/{hook['id']}", headers=globex.headers
    )
    assert theirs.status_code == 404
    assert (
        hook["id"]
        not in (
            await kupe.client.get("/api/v1/tenants/globex/webhooks", headers=globex.headers)
        ).text
    )

    stale = await kupe.client.patch(
        url, json={"events": ["*"]}, headers={**acme.headers, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    changed = await kupe.client.patch(
        url,
        json={"events": ["*"], "secret": "n" * 32},
        headers={**acme.headers, "If-Match": got.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["*"]
    assert "secret" not in changed.json()
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    await kupe.step()
    assert receiver.received, "the rotated secret signs the next delivery"
    verify(
        "n" * 32,
        receiver.received[0].headers,
        receiver.received[0].body,
        now=kupe.clock.now().timestamp(),
    )
    refused = await kupe.client.patch(url, json={"events": ["apikey.*", "x"]}, headers=acme.headers)
    assert refused.status_code == 400
    assert refused.json()["field"] == "events"

    retried = await kupe.client.post(
        acme.url("/webhooks"),
        json={"url": receiver.url, "events": ["*"]},
        headers={**acme.headers, "Idempotency-Key": "hook-1"},
    )
    again = await kupe.client.post(
        acme.url("/webhooks"),
        json={"url": receiver.url, "events": ["*"]},
        headers={**acme.headers, "Idempotency-Key": "hook-1"},
    )
    assert retried.status_code == again.status_code == 201
    assert retried.json()["id"] == again.json()["id"]
    assert (await kupe.client.delete(url, headers=acme.headers)).status_code == 204
    assert (await kupe.client.get(url, headers=acme.headers)).status_code == 404
    assert (await kupe.client.get(f"{url}/deliveries", headers=acme.headers)).status_code == 404

    cap = kupe.runtime.settings.webhooks.max_per_tenant
    for _ in range(cap - 1):
        await create_hook(kupe, acme, receiver.url, ["*"])
    over = await kupe.client.post(
        acme.url("/webhooks"), json={"url": receiver.url, "events": ["*"]}, headers=acme.headers
    )
    assert over.status_code == 403
    assert over.json()["code"] == "PLAN_LIMIT_EXCEEDED"


async def test_the_sdk_manages_hooks_and_reads_the_audit(kupe: Kupe, receiver: Receiver) -> None:
    acme = await kupe.tenant("acme")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=kupe.app))
    async with (
        http,
        AsyncClient("http://kupe.test", api_key=acme.key, tenant="acme", http_client=http) as sdk,
    ):
        created = await sdk.webhooks.create(receiver.url, events=["cluster.created"])
        assert created.secret.startswith("whsec_")
        assert [h.id for h in await sdk.webhooks.list()] == [created.id]
        assert (await sdk.webhooks.get(created.id)).events == ["cluster.created"]
        assert (await kupe.create_cluster(acme, "web")).status_code == 201
        await kupe.step()
        [attempt] = await sdk.webhooks.deliveries(created.id)
        assert attempt.delivered
        assert attempt.event_type == "cluster.created"
        event = verify(
            created.secret,
            receiver.received[0].headers,
            receiver.received[0].body,
            now=kupe.clock.now().timestamp(),
        )
        assert event["id"] == attempt.event_id
        off = await sdk.webhooks.update(created.id, enabled=False)
        assert off.status.disabled
        assert off.status.reason == "Disabled by an admin"
        with pytest.raises(SDKBadRequest):
            await sdk.webhooks.update(created.id, events=["bogus"])
        await sdk.webhooks.delete(created.id)
        with pytest.raises(SDKNotFound):
            await sdk.webhooks.get(created.id)
        entries = await sdk.audit.list(target=f"webhooks/{created.id}")
        assert [(e.method, e.status) for e in entries] == [
            ("DELETE", 204),
            ("PATCH", 400),
            ("PATCH", 200),
            ("POST", 201),
        ]
        assert await sdk.audit.list(since=kupe.clock.now() + timedelta(seconds=1)) == []


async def test_timeouts_and_redirects_are_failures(receiver: Receiver) -> None:
    from kupe.server.webhooks.delivery import Deliverer

    deliverer = Deliverer(timeout=0.5, allow_private=True)
    try:
        receiver.script = [302, 204]
        moved = await deliverer.send(receiver.url, "s" * 20, "ev-1", b"{}", 0)
        assert (moved.delivered, moved.status_code) == (False, 302)
        done = await deliverer.send(receiver.url, "s" * 20, "ev-1", b"{}", 0)
        assert (done.delivered, done.status_code) == (True, 204)
        receiver.delay = 1.5
        slow = await deliverer.send(receiver.url, "s" * 20, "ev-2", b"{}", 0)
        assert not slow.delivered
        assert slow.error == "timed out after 0.5 s"
        assert slow.status_code is None
    finally:
        await deliverer.aclose()
    assert [r.path for r in receiver.received] == ["/hooks/kupe"] * 3  # never followed


async def test_a_deleted_tenants_hooks_get_its_last_event_then_stop(
    kupe: Kupe, receiver: Receiver
) -> None:
    acme = await kupe.tenant("acme")
    await create_hook(kupe, acme, receiver.url, ["tenant.*"])
    services = kupe.runtime.services
    async with kupe.runtime.db.write() as session:  # as `kupe admin delete-tenant` does
        tenant = await services.tenants.tenant(session, "acme", for_update=True)
        await services.lifecycle.begin_deletion(session, tenant, cascade=True)
        assert await services.lifecycle.finish_deletion(session, tenant)
    await kupe.run_for(10)
    assert [json.loads(r.body)["type"] for r in receiver.received][-1] == "tenant.deleted"
    async with kupe.runtime.db.read() as session:
        reasons = (await session.scalars(select(Webhook.disabled_reason))).all()
    assert reasons == ["The tenant was deleted"]
    await kupe.step(3600)
    assert [json.loads(r.body)["type"] for r in receiver.received].count("tenant.deleted") == 1
