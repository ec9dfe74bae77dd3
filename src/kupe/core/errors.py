"""The one tree of Kupe errors: each has a stable machine-readable `code` and an HTTP status.

Services raise these; the server renders them as the Kupe error body and the SDK maps a
response's `code` back to the same classes.
"""

from __future__ import annotations

from collections.abc import Mapping


class KupeError(Exception):
    """Base of every Kupe error; `status` is the HTTP status, `code` the stable error code."""

    status: int = 500
    code: str = "INTERNAL"
    default_message: str = "Internal server error"
    default_headers: Mapping[str, str] = {}

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.field = field
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = {**self.default_headers, **(headers or {})}
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        """The Kupe error body: `error`, `code` and, for validation errors, `field`."""
        out = {"error": self.message, "code": self.code}
        if self.field is not None:
            out["field"] = self.field
        return out


class BadRequest(KupeError):
    status = 400
    code = "BAD_REQUEST"
    default_message = "Bad request"


class ValidationFailed(BadRequest):
    code = "VALIDATION_FAILED"
    default_message = "Validation failed"


class MalformedJson(BadRequest):
    code = "MALFORMED_JSON"
    default_message = "Request body is not valid JSON"


class UnsupportedVersion(BadRequest):
    code = "UNSUPPORTED_VERSION"


class UnsupportedUpgrade(BadRequest):
    code = "UNSUPPORTED_UPGRADE"


class ImmutableField(BadRequest):
    code = "IMMUTABLE_FIELD"


class Unauthorized(KupeError):
    status = 401
    code = "UNAUTHORIZED"
    default_message = "Missing or invalid credentials"
    default_headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(KupeError):
    status = 403
    code = "FORBIDDEN"
    default_message = "Forbidden"


class NotAMember(Forbidden):
    code = "NOT_A_MEMBER"
    default_message = "Not a member of this tenant"


class AdminRequired(Forbidden):
    code = "ADMIN_REQUIRED"
    default_message = "Admin access required"


class PlanLimitExceeded(Forbidden):
    code = "PLAN_LIMIT_EXCEEDED"


class DedicatedUnsupported(Forbidden):
    code = "CLUSTER_DEDICATED_UNSUPPORTED"
    default_message = "Your plan does not include dedicated clusters"


class TenantSuspended(Forbidden):
    code = "TENANT_SUSPENDED"
    default_message = "Tenant is suspended; only reads are allowed"


class NotFound(KupeError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class MethodNotAllowed(KupeError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed"


class Conflict(KupeError):
    status = 409
    code = "CONFLICT"
    default_message = "Conflict"


class AlreadyExists(Conflict):
    code = "ALREADY_EXISTS"


class ClusterTerminating(Conflict):
    code = "CLUSTER_TERMINATING"
    default_message = "Cluster is terminating"


class IdempotencyKeyReused(Conflict):
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "Idempotency-Key was already used with a different request body"


class PlanDowngradeBlocked(Conflict):
    code = "PLAN_DOWNGRADE_BLOCKED"


class TenantTerminating(Conflict):
    code = "TENANT_TERMINATING"
    default_message = "Tenant is being deleted"


class LastAdmin(Conflict):
    code = "LAST_ADMIN"
    default_message = "A tenant must keep at least one admin"


class PreconditionFailed(KupeError):
    status = 412
    code = "PRECONDITION_FAILED"
    default_message = "If-Match does not match the current ETag"


class Expired(KupeError):
    """A watch asked to resume from a resourceVersion older than the event retention."""

    status = 410
    code = "EXPIRED"
    default_message = "resourceVersion is too old; list again and watch from the list's"


class RequestTimeout(KupeError):
    status = 408
    code = "REQUEST_TIMEOUT"
    default_message = "The request was not received in time"


class PayloadTooLarge(KupeError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "Request body is larger than 1 MiB"


class UnsupportedMediaType(KupeError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "Request body must be application/json"


class UriTooLong(KupeError):
    status = 414
    code = "URI_TOO_LONG"
    default_message = "The request line is too long"


class HeadersTooLarge(KupeError):
    status = 431
    code = "HEADERS_TOO_LARGE"
    default_message = "Request headers are too large"


class RateLimited(KupeError):
    status = 429
    code = "RATE_LIMITED"
    default_message = "Too many requests"


class NotImplementedYet(KupeError):
    """A route of the contract this installation has not built: 501, never 404 (clients read
    404 as "deleted")."""

    status = 501
    code = "NOT_IMPLEMENTED"
    default_message = "This part of the Kupe API is not available on this installation yet"


class InternalError(KupeError):
    status = 500
    code = "INTERNAL"


class ServiceUnavailable(KupeError):
    status = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "Service temporarily unavailable"


class NotReady(ServiceUnavailable):
    code = "NOT_READY"
    default_message = "Cluster is not yet ready"


# Every concrete class by code, so clients can map a response back to an exception.
ERRORS_BY_CODE: dict[str, type[KupeError]] = {}


def _register(cls: type[KupeError]) -> None:
    ERRORS_BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _register(sub)


_register(KupeError)
