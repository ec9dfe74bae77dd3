"""Where tenants' configurations are delivered: a backend takes one tenant's effective
configuration (None: the tenant is gone) and makes the alert backend serve it. Idempotent;
BackendError says whether trying again may help."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import yaml


class BackendError(Exception):
    """A push failed; `transient` when a later attempt may succeed."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class TenantTarget:
    id: str
    name: str


class AlertBackend(Protocol):
    name: str

    async def push(self, tenant: TenantTarget, config: dict[str, Any] | None) -> None:
        """Serve `config` for `tenant` (None: serve nothing for it)."""
        ...

    async def start(self) -> None:
        """At the start of a process that reconciles: serve what was delivered before."""
        ...

    async def aclose(self) -> None: ...


class NoBackend:
    """`none`: configurations are checked and stored, delivered nowhere."""

    name = "none"

    async def push(self, tenant: TenantTarget, config: dict[str, Any] | None) -> None:
        return None

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class MimirBackend:
    """Mimir's (or Cortex's) multi-tenant Alertmanager configuration API: one configuration
    per tenant, the tenant named by `X-Scope-OrgID` (Kupe's tenant name)."""

    name = "mimir"

    def __init__(self, url: str, *, token: str | None, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, follow_redirects=False
        )

    async def push(self, tenant: TenantTarget, config: dict[str, Any] | None) -> None:
        org = {"X-Scope-OrgID": tenant.name}
        try:
            if config is None:
                response = await self._client.delete("/api/v1/alerts", headers=org)
            else:
                body = yaml.safe_dump(
                    {"template_files": {}, "alertmanager_config": yaml.safe_dump(config)}
                )
                response = await self._client.post(
                    "/api/v1/alerts",
                    content=body,
                    headers={**org, "Content-Type": "application/yaml"},
                )
        except httpx.HTTPError as exc:
            raise BackendError(f"Mimir is unreachable: {type(exc).__name__}") from None
        if response.status_code >= 300 and not (config is None and response.status_code == 404):
            # Mimir's message may quote the configuration: only the status leaves here.
            raise BackendError(
                f"Mimir answered {response.status_code} to the configuration of {tenant.name!r}",
                transient=response.status_code >= 500 or response.status_code == 429,
            )

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
