"""Service endpoints (§10), request ids, metrics, OpenAPI and routing errors."""

from __future__ import annotations

from tests.support.harness import Kupe


async def test_health_and_readiness(kupe: Kupe) -> None:
    assert (await kupe.client.get("/healthz")).json() == {"status": "ok"}
    ready = await kupe.client.get("/readyz")
    # The in-process harness runs no background loop; readiness covers database and migrations.
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["migrations"] == "ok"


async def test_request_id_is_echoed_or_generated(kupe: Kupe) -> None:
    echoed = await kupe.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await kupe.client.get("/healthz", headers={"X-Request-Id": "bad id\twith junk"})
    assert generated.headers["x-request-id"] not in ("", "bad id\twith junk")
    error = await kupe.client.get("/api/v1/nowhere")
    assert error.headers["x-request-id"]


async def test_unknown_route_and_wrong_method(kupe: Kupe) -> None:
    missing = await kupe.client.get("/api/v1/nowhere")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"
    acme = await kupe.tenant()
    wrong = await kupe.client.put(acme.url("/clusters"), json={}, headers=acme.headers)
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_metrics_count_requests_transitions_and_provider_operations(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    await kupe.create_cluster(acme, "web")
    await kupe.run_for(9)
    await kupe.client.patch(
        acme.url("/clusters/web"), json={"resources": {"cpu": "3"}}, headers=acme.headers
    )
    await kupe.step()
    await kupe.client.delete(acme.url("/clusters/web"), headers=acme.headers)
    await kupe.run_for(4)
    text = (await kupe.client.get("/metrics")).text
    assert 'kupe_provider_operations_total{operation="create",provider="simulated"} 1.0' in text
    assert 'kupe_provider_operations_total{operation="update",provider="simulated"} 1.0' in text
    assert 'kupe_provider_operations_total{operation="delete",provider="simulated"} 1.0' in text
    assert (
        'kupe_cluster_phase_transitions_total{from_phase="Provisioning",to_phase="Running"} 1.0'
        in text
    )
    assert 'route="/api/v1/tenants/{tenant}/clusters",status="201"' in text
    assert "kupe_http_request_duration_seconds_bucket" in text


async def test_queue_depth_counts_the_items_due(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    for name in ("one", "two", "three"):
        await kupe.create_cluster(acme, name)

    async def depth() -> str:
        await kupe.runtime.reconciler.measure_queue_depth()
        text = (await kupe.client.get("/metrics")).text
        return next(
            line for line in text.splitlines() if line.startswith("kupe_reconciler_queue_depth{")
        )

    assert await depth() == 'kupe_reconciler_queue_depth{kind="cluster"} 3.0'
    await kupe.step()
    assert await depth() == 'kupe_reconciler_queue_depth{kind="cluster"} 0.0'
    kupe.clock.advance(kupe.runtime.settings.reconciler.poll_seconds)
    assert await depth() == 'kupe_reconciler_queue_depth{kind="cluster"} 3.0'  # looked at again


async def test_openapi_documents_every_route_and_the_error_body(kupe: Kupe) -> None:
    spec = (await kupe.client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    cluster = paths["/api/v1/tenants/{tenant}/clusters/{name}"]
    assert set(cluster) >= {"get", "patch", "delete"}
    assert set(cluster["patch"]["responses"]) >= {"200", "400", "401", "403", "404", "409", "412"}
    create = paths["/api/v1/tenants/{tenant}/clusters"]["post"]
    assert "201" in create["responses"]
    assert "422" not in create["responses"]
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "code", "field"}
    assert (await kupe.client.get("/docs")).status_code == 200


async def test_an_unexpected_error_is_a_clean_500_with_request_id(kupe: Kupe) -> None:
    acme = await kupe.tenant()

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: SELECT * FROM api_keys")

    kupe.runtime.services.clusters.list_json = broken  # type: ignore[method-assign]
    response = await kupe.client.get(
        acme.url("/clusters"), headers={**acme.headers, "X-Request-Id": "r-1"}
    )
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error", "code": "INTERNAL"}
    assert response.headers["x-request-id"] == "r-1"
    assert "SELECT" not in response.text
