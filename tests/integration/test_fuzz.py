"""Schema fuzzing: schemathesis drives every operation of our own OpenAPI document, as an admin
of a test tenant, and every response must be what the document promises (status code, body
schema, content type) and never a server error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.modes import GenerationMode

from tests.support.harness import Kupe, TenantCreds, test_settings
from tests.support.openbao import OpenBaoServer
from tests.support.threaded import app_in_thread

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
# Examples per operation and generation mode: enough to reach the documented status codes of
# every operation (the API has grown to ~50 operations), small enough for `make test`.
EXAMPLES = 12
BASE_URL = "http://kupe.test"
TENANT = "acme"
CLUSTER = "web"
SECRET = "db"
# What the server reads as true for a boolean query parameter (pydantic's lax booleans).
_TRUE = {"true", "1", "yes", "on", "t", "y"}


def _send(portal: BlockingPortal, kupe: Kupe, kwargs: dict[str, Any]) -> httpx.Response:
    """Replay the requests-style keyword arguments schemathesis produced with our ASGI client."""
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params") or None,
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data if isinstance(data, bytes | str) else str(data)

    async def call() -> httpx.Response:
        return await kupe.client.request(**request)

    return portal.call(call)


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    path_parameters: st.SearchStrategy[dict[str, Any]],
    run: Callable[[Any], None],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        params = data.draw(path_parameters)
        case = data.draw(operation.as_strategy(mode, path_parameters=params))
        run(case)

    # Negative mode has nothing to break in an operation without parameters.
    with contextlib.suppress(Unsatisfiable):
        fuzz()


def _path_parameters(operation: Any, key_id: str) -> st.SearchStrategy[dict[str, Any]]:
    """Aim at our tenant, and at real objects often enough to reach the success paths."""
    names = {p.name for p in operation.path_parameters}
    fixed: dict[str, st.SearchStrategy[Any]] = {}
    if "tenant" in names:
        fixed["tenant"] = st.sampled_from([TENANT, TENANT, TENANT, "other"])
    if "name" in names and "/secrets/" in operation.path:
        fixed["name"] = st.sampled_from([SECRET, SECRET, "nope"])
    if "name" in names and "/clusters/" in operation.path:
        fixed["name"] = st.sampled_from([CLUSTER, CLUSTER, "nope"])
    if "name" in names and "/plans/" in operation.path:
        fixed["name"] = st.sampled_from(["starter", "pro", "business", "enterprise", "gold"])
    if "email" in names:
        fixed["email"] = st.sampled_from(["viewer@acme.example.com", "nobody@example.com"])
    if "key_id" in names:
        fixed["key_id"] = st.sampled_from([key_id, "ak-00000000"])
    return st.fixed_dictionaries(fixed)


# The contract is the HTTP layer's, the same over either database, and the examples are the same
# (derandomized): one database is enough here; tests/integration/test_hostile_input.py sends
# the hostile shapes to both.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_operation_conforms_to_the_openapi_document(
    database_url: str, tmp_path: Path, openbao: OpenBaoServer
) -> None:
    openbao.ensure_running()
    generous = {
        "rate_limit_burst": 1_000_000,
        "rate_limit_rps": 1_000_000,
        "auth_failure_allowance": 1_000_000,
        **openbao.kupe_credential(),  # managed secrets answer for real, not 501
    }
    with app_in_thread(test_settings(tmp_path, database_url, **generous)) as (portal, kupe):
        acme: TenantCreds = portal.call(kupe.tenant, TENANT, "business")
        portal.call(kupe.tenant, "other", "pro")

        async def seed() -> str:
            await kupe.create_cluster(acme, CLUSTER)
            await kupe.run_for(20)
            await kupe.client.post(
                acme.url("/members"),
                json={"email": "viewer@acme.example.com", "role": "readonly"},
                headers=acme.headers,
            )
            spare = await kupe.client.post(
                acme.url("/apikeys"),
                json={"displayName": "spare", "role": "readonly"},
                headers=acme.headers,
            )
            secret = {
                "name": SECRET,
                "secretPath": "db",
                "sync": [{"cluster": CLUSTER, "namespace": "apps"}],
            }
            await kupe.client.post(acme.url("/secrets"), json=secret, headers=acme.headers)
            return str(spare.json()["id"])

        key_id = portal.call(seed)
        document = portal.call(kupe.client.get, "/api/v1/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        failures: dict[tuple[str, str], str] = {}
        statuses: dict[str, set[int]] = {}

        def run(case: Any) -> None:
            # A watch is a stream that does not end while the server runs: not a request and
            # its response (tests/integration/test_watch.py covers it). Fuzz the plain reads.
            if case.query and str(case.query.get("watch", "")).lower() in _TRUE:
                del case.query["watch"]
            kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=acme.headers)
            response = _send(portal, kupe, kwargs)
            label = f"{case.operation.method.upper()} {case.operation.path}"
            statuses.setdefault(label, set()).add(response.status_code)
            try:
                case.validate_response(
                    response, checks=CHECKS, headers=kwargs["headers"], transport_kwargs=kwargs
                )
            except (AssertionError, BaseExceptionGroup) as exc:
                key = (label, type(exc).__name__ + str(response.status_code))
                failures.setdefault(key, f"{exc}\n{kwargs!r}\n{response.text[:500]}")

        operations = [result.ok() for result in schema.get_all_operations()]
        # Deletes last, so the seeded objects serve every other operation first.
        operations.sort(key=lambda operation: operation.method.lower() == "delete")
        assert len(operations) >= 20
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, _path_parameters(operation, key_id), run)

    report = "\n\n".join(
        f"{label} [{kind}]\n{detail}" for (label, kind), detail in failures.items()
    )
    assert not failures, report
    # The fuzzing reached past validation into real answers for the main resources.
    assert 201 in statuses["POST /api/v1/tenants/{tenant}/clusters"], statuses
    assert 200 in statuses["GET /api/v1/tenants/{tenant}/clusters/{name}"], statuses
    assert 200 in statuses["GET /api/v1/tenants/{tenant}/clusters/{name}/kubeconfig"], statuses
