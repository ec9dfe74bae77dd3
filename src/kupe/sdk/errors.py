"""The exceptions the SDK raises: one tree rooted in kupe.core.errors.KupeError.

```
KupeError                     (kupe.core.errors)
└── SDKError                  everything the SDK raises: status, code, message, request_id
    ├── APIError              the server answered with an error body
    │   ├── BadRequest        400
    │   ├── Unauthorized      401
    │   ├── Forbidden         403
    │   │   └── PlanLimitExceeded
    │   ├── NotFound          404
    │   ├── Conflict          409
    │   ├── Expired           410 (a watch resumed from too old a resourceVersion)
    │   ├── PreconditionFailed 412
    │   ├── RateLimited       429
    │   └── ServerError       5xx
    │       └── ServiceUnavailable 503
    ├── TransportError        no answer: connection refused, reset or timed out
    ├── ConfigurationError    the client lacks a setting (tenant, profile)
    └── WaitError             wait() cannot reach the phase
        ├── ClusterFailed     the cluster ended Failed; `reason` from its conditions
        └── WaitTimeout
```

Each APIError class also subclasses the core class of the same name, so `except
kupe.core.errors.NotFound` catches what the SDK raises.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import httpx

from kupe.core import errors as core
from kupe.core.errors import ERRORS_BY_CODE, KupeError
from kupe.schemas.cluster import Cluster

__all__ = [
    "APIError",
    "BadRequest",
    "ClusterFailed",
    "ConfigurationError",
    "Conflict",
    "Expired",
    "Forbidden",
    "KupeError",
    "NotFound",
    "PlanLimitExceeded",
    "PreconditionFailed",
    "RateLimited",
    "SDKError",
    "ServerError",
    "ServiceUnavailable",
    "TransportError",
    "Unauthorized",
    "WaitError",
    "WaitTimeout",
]


class SDKError(KupeError):
    """Base of everything the SDK raises; `status` is 0 when there was no HTTP answer."""

    request_id: str | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, field=field, code=code, headers=headers)
        if status is not None:
            self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class APIError(SDKError):
    """The server answered with an error: status, code, message, field and request id."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked us to wait (Retry-After), if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class BadRequest(APIError, core.BadRequest):
    """400: malformed request, validation failure, immutable field or unsupported version."""


class Unauthorized(APIError, core.Unauthorized):
    """401: the credential is missing, unknown, expired or revoked."""


class Forbidden(APIError, core.Forbidden):
    """403: not a member, role too low, or a plan feature is missing."""


class PlanLimitExceeded(Forbidden, core.PlanLimitExceeded):
    """403 PLAN_LIMIT_EXCEEDED: the plan's cluster count or resource pool would be exceeded."""


class NotFound(APIError, core.NotFound):
    """404: tenant, resource or route not found."""


class Conflict(APIError, core.Conflict):
    """409: the name exists, or the operation conflicts with the resource's state."""


class Expired(APIError, core.Expired):
    """410: the watch's resourceVersion is older than the server keeps events; list again."""


class PreconditionFailed(APIError, core.PreconditionFailed):
    """412: If-Match no longer names the current version; re-read and retry."""


class RateLimited(APIError, core.RateLimited):
    """429: too many requests (raised once the retries are used up)."""


class ServerError(APIError, core.InternalError):
    """5xx: the server failed; the request may be retried later."""


class ServiceUnavailable(ServerError, core.ServiceUnavailable):
    """503: not ready yet (e.g. connection details before Running) or a dependency is down."""


class TransportError(SDKError):
    """No HTTP answer: the connection was refused, reset or timed out."""

    status = 0
    code = "TRANSPORT_ERROR"
    default_message = "Could not reach the Kupe API"


class ConfigurationError(SDKError):
    """The client is missing a setting, such as the tenant or a named profile."""

    status = 0
    code = "NOT_CONFIGURED"
    default_message = "The Kupe client is not configured"


class WaitError(SDKError):
    """wait() gave up: the cluster cannot reach the phase asked for."""

    status = 0
    code = "WAIT_FAILED"

    def __init__(
        self, message: str, *, cluster: Cluster | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.cluster = cluster


class ClusterFailed(WaitError):
    """The cluster ended in phase Failed; `reason` is the message from its conditions."""

    code = "CLUSTER_FAILED"

    def __init__(self, cluster: Cluster) -> None:
        self.reason = failure_reason(cluster)
        super().__init__(f"Cluster {cluster.name} failed: {self.reason}", cluster=cluster)


class WaitTimeout(WaitError):
    """The cluster did not reach the phase within the timeout."""

    code = "WAIT_TIMEOUT"


def failure_reason(cluster: Cluster) -> str:
    """Why a cluster failed, from the condition that says so."""
    for condition in cluster.status.conditions:
        if condition.status == "False" and condition.reason in ("Failed", "ProvisioningFailed"):
            return condition.message
    for condition in cluster.status.conditions:
        if condition.status == "False" and condition.message:
            return condition.message
    return "no reason given"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Expired,
    412: PreconditionFailed,
    429: RateLimited,
    500: ServerError,
    503: ServiceUnavailable,
}
# The SDK class standing for each core class; codes without one use their nearest ancestor.
_BY_CORE: dict[type[KupeError], type[APIError]] = {
    core.PlanLimitExceeded: PlanLimitExceeded,
    core.BadRequest: BadRequest,
    core.Unauthorized: Unauthorized,
    core.Forbidden: Forbidden,
    core.NotFound: NotFound,
    core.Conflict: Conflict,
    core.PreconditionFailed: PreconditionFailed,
    core.Expired: Expired,
    core.RateLimited: RateLimited,
    core.ServiceUnavailable: ServiceUnavailable,
    core.InternalError: ServerError,
}


def _class_for(status: int, code: str | None) -> type[APIError]:
    core_class = ERRORS_BY_CODE.get(code or "")
    if core_class is not None:
        for ancestor in core_class.__mro__:
            if not issubclass(ancestor, KupeError):
                break
            sdk_class = _BY_CORE.get(ancestor)
            # A code is trusted only when it agrees with the status actually received.
            if sdk_class is not None and ancestor.status == status:
                return sdk_class
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response, from its `code` and status."""
    message: str | None = None
    code: str | None = None
    field: str | None = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("error") if isinstance(body.get("error"), str) else None
        code = body.get("code") if isinstance(body.get("code"), str) else None
        field = body.get("field") if isinstance(body.get("field"), str) else None
    if message is None:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    cls = _class_for(response.status_code, code)
    return cls(
        message,
        status=response.status_code,
        code=code or cls.code,
        field=field,
        request_id=response.headers.get("x-request-id"),
        headers={k.lower(): v for k, v in response.headers.items()},
    )


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())
