"""Drive a real Kupe app in-process: real database (built by the migrations), real simulated
provider, a fake clock, and the reconciler stepped by hand so tests never sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from kupe.core.clock import FakeClock
from kupe.server.app import create_app
from kupe.server.runtime import Runtime
from kupe.server.settings import Settings


@dataclass(frozen=True)
class TenantCreds:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def url(self, path: str = "") -> str:
        return f"/api/v1/tenants/{self.name}{path}"


class Kupe:
    """One app under test."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, clock: FakeClock) -> None:
        self.app = app
        self.client = client
        self.clock = clock
        self.runtime: Runtime = app.state.runtime

    async def tenant(self, name: str = "acme", plan: str = "pro") -> TenantCreds:
        async with self.runtime.db.write() as session:
            _tenant, key = await self.runtime.services.tenants.create_tenant(
                session,
                name=name,
                display_name=name.title(),
                contact_email=f"admin@{name}.example.com",
                plan=plan,
            )
        return TenantCreds(name, key.raw)

    async def api_key(self, tenant: str, role: str) -> str:
        async with self.runtime.db.write() as session:
            record = await self.runtime.services.tenants.tenant(session, tenant)
            key = await self.runtime.services.tenants.issue_api_key(
                session, record.id, role=role, display_name=f"{role} key", created_by="test"
            )
        return key.raw

    async def step(self, seconds: float = 0.0) -> int:
        """Move the clock, then reconcile everything that is due."""
        self.clock.advance(seconds)
        return await self.runtime.reconciler.drain()

    async def run_for(self, seconds: float, tick: float = 1.0) -> None:
        """Let `seconds` of fake time pass in ticks, reconciling at each."""
        elapsed = 0.0
        await self.step()
        while elapsed < seconds:
            await self.step(tick)
            elapsed += tick

    async def run_until(
        self, done: Callable[[], Awaitable[bool]], limit: float, what: Callable[[], Awaitable[Any]]
    ) -> None:
        """Let fake time pass in 1 s ticks until `done()`; fail after `limit` seconds with
        `what()` (the state that did not get there) in the message. For outcomes that depend
        on random provider failures, which no fixed amount of time is sure to be enough for."""
        waited = 0.0
        await self.step()
        while not await done():
            assert waited < limit, await what()
            await self.step(1.0)
            waited += 1.0

    async def phase(self, creds: TenantCreds, name: str) -> str:
        response = await self.client.get(creds.url(f"/clusters/{name}"), headers=creds.headers)
        if response.status_code == 404:
            return "<gone>"
        assert response.status_code == 200, response.text
        return str(response.json()["status"]["phase"])

    async def create_cluster(self, creds: TenantCreds, name: str, **fields: Any) -> httpx.Response:
        body = {"name": name, "displayName": name.title(), "type": "shared", **fields}
        return await self.client.post(creds.url("/clusters"), json=body, headers=creds.headers)


def test_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "sim_provision_seconds": 8,
        "sim_upgrade_seconds": 5,
        "sim_delete_seconds": 3,
        "reconcile_poll_seconds": 1,
        "retry_base_seconds": 1,
        "retry_max_seconds": 4,
        "log_format": "json",
        **overrides,
    }
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@asynccontextmanager
async def running_kupe(settings: Settings, clock: FakeClock | None = None) -> AsyncIterator[Kupe]:
    """Start the app's lifespan (migrations, no background loop) and an in-process client."""
    clock = clock or FakeClock()
    app = create_app(settings, clock=clock, run_reconciler=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kupe.test") as client:
            yield Kupe(app, client, clock)
    await asyncio.sleep(0)
