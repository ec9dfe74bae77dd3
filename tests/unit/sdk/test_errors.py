"""Error responses become one tree of exceptions, chosen by `code` and status."""

from __future__ import annotations

import httpx
import pytest

from kupe.core import errors as core
from kupe.schemas.cluster import Cluster
from kupe.sdk import errors as sdk
from kupe.sdk.errors import error_from_response, failure_reason


def response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"X-Request-Id": "req-1", **headers})


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "VALIDATION_FAILED", sdk.BadRequest),
        (400, "UNSUPPORTED_UPGRADE", sdk.BadRequest),
        (401, "UNAUTHORIZED", sdk.Unauthorized),
        (403, "ADMIN_REQUIRED", sdk.Forbidden),
        (403, "PLAN_LIMIT_EXCEEDED", sdk.PlanLimitExceeded),
        (403, "CLUSTER_DEDICATED_UNSUPPORTED", sdk.Forbidden),
        (404, "NOT_FOUND", sdk.NotFound),
        (409, "ALREADY_EXISTS", sdk.Conflict),
        (409, "LAST_ADMIN", sdk.Conflict),
        (409, "SOMETHING_NEW", sdk.Conflict),
        (412, "PRECONDITION_FAILED", sdk.PreconditionFailed),
        (429, "RATE_LIMITED", sdk.RateLimited),
        (500, "INTERNAL", sdk.ServerError),
        (503, "NOT_READY", sdk.ServiceUnavailable),
        (502, "BAD_GATEWAY", sdk.ServerError),
        (418, "TEAPOT", sdk.APIError),
        # A code that disagrees with the status does not pick the class.
        (500, "PLAN_LIMIT_EXCEEDED", sdk.ServerError),
    ],
)
def test_class_follows_code_then_status(status: int, code: str, expected: type) -> None:
    error = error_from_response(response(status, {"error": "it broke", "code": code}))
    assert type(error) is expected
    assert error.status == status
    assert error.code == code
    assert error.message == "it broke"
    assert error.request_id == "req-1"


def test_sdk_errors_are_caught_as_the_core_classes() -> None:
    error = error_from_response(
        response(403, {"error": "pool exceeded by 2 cpu", "code": "PLAN_LIMIT_EXCEEDED"})
    )
    assert isinstance(error, core.PlanLimitExceeded)
    assert isinstance(error, core.Forbidden)
    assert isinstance(error, sdk.Forbidden)
    assert isinstance(error, sdk.APIError)
    assert isinstance(error, core.KupeError)


def test_field_and_retry_after_are_kept() -> None:
    error = error_from_response(
        response(
            400,
            {
                "error": "memory must carry a unit",
                "code": "VALIDATION_FAILED",
                "field": "resources.memory",
            },
        )
    )
    assert error.field == "resources.memory"
    unavailable = error_from_response(
        response(
            503, {"error": "Cluster is not yet ready", "code": "NOT_READY"}, **{"Retry-After": "5"}
        )
    )
    assert isinstance(unavailable, sdk.ServiceUnavailable)
    assert unavailable.retry_after == 5.0


def test_a_body_that_is_not_kupe_json_still_gives_a_useful_error() -> None:
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert isinstance(error, sdk.ServerError)
    assert error.message == "HTTP 502 Bad Gateway"
    assert error.request_id is None


def test_failure_reason_comes_from_the_conditions() -> None:
    cluster = Cluster.model_validate(
        {
            "name": "doomed",
            "displayName": "Doomed",
            "type": "shared",
            "version": "1.32",
            "resources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
            "resourceVersion": "3",
            "generation": 1,
            "createdAt": "2026-04-06T12:00:00Z",
            "status": {
                "phase": "Failed",
                "observedGeneration": 0,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "False",
                        "reason": "Failed",
                        "message": "quota exhausted in region",
                        "lastTransitionTime": "2026-04-06T12:00:01Z",
                    }
                ],
            },
        }
    )
    assert failure_reason(cluster) == "quota exhausted in region"
    failed = sdk.ClusterFailed(cluster)
    assert failed.reason == "quota exhausted in region"
    assert failed.code == "CLUSTER_FAILED"
    assert isinstance(failed, sdk.WaitError)
    assert "doomed" in str(failed)


def test_every_public_name_is_exported() -> None:
    import kupe.sdk

    for name in sdk.__all__:
        assert getattr(kupe.sdk, name) is getattr(sdk, name)
