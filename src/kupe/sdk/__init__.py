"""The Kupe Python SDK: a typed client for the Kupe API, sync and async.

```python
from kupe.sdk import Client

with Client(tenant="acme") as kupe:          # KUPE_API_URL, KUPE_API_KEY from the environment
    kupe.clusters.create("production", display_name="Production", type="shared")
    cluster = kupe.clusters.wait("production")            # raises ClusterFailed / WaitTimeout
    print(cluster.status.endpoint)
```

Responses are the Pydantic models the server itself uses (`kupe.schemas`); errors are the
tree in `kupe.sdk.errors`.
"""

from kupe.schemas.apikey import ApiKey, ApiKeyCreated
from kupe.schemas.cluster import Cluster, ClusterUpdate, ConnectionDetails, ResourcesInput
from kupe.schemas.event import Timeline, TimelineEntry
from kupe.schemas.plan import Plan
from kupe.schemas.tenant import MemberView, Tenant, TenantUpdate
from kupe.sdk._http import RetryPolicy
from kupe.sdk.client import AsyncClient, Client
from kupe.sdk.config import ClientSettings, ConfigFile, Profile, current_profile, resolve_settings
from kupe.sdk.errors import (
    APIError,
    BadRequest,
    ClusterFailed,
    ConfigurationError,
    Conflict,
    Expired,
    Forbidden,
    KupeError,
    NotFound,
    PlanLimitExceeded,
    PreconditionFailed,
    RateLimited,
    SDKError,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    WaitError,
    WaitTimeout,
)
from kupe.sdk.watch import WatchEvent

__all__ = [
    "APIError",
    "ApiKey",
    "ApiKeyCreated",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientSettings",
    "Cluster",
    "ClusterFailed",
    "ClusterUpdate",
    "ConfigFile",
    "ConfigurationError",
    "Conflict",
    "ConnectionDetails",
    "Expired",
    "Forbidden",
    "KupeError",
    "MemberView",
    "NotFound",
    "Plan",
    "PlanLimitExceeded",
    "PreconditionFailed",
    "Profile",
    "RateLimited",
    "ResourcesInput",
    "RetryPolicy",
    "SDKError",
    "ServerError",
    "ServiceUnavailable",
    "Tenant",
    "TenantUpdate",
    "Timeline",
    "TimelineEntry",
    "TransportError",
    "Unauthorized",
    "WaitError",
    "WaitTimeout",
    "WatchEvent",
    "current_profile",
    "resolve_settings",
]
