"""Operator commands (`kupe admin ...`) against the same database a running app uses."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from kupe.cli.main import app as cli
from kupe.server.db.models import Cluster, Tenant
from tests.support.harness import Kupe, TenantCreds


class Operator:
    """Runs `kupe admin ...` in a worker thread (it runs its own event loop)."""

    def __init__(self, kupe: Kupe, tmp_path: Path) -> None:
        self.kupe = kupe
        self.env = {
            "KUPE_DATABASE_URL": kupe.runtime.settings.effective_database_url,
            "KUPE_DATA_DIR": str(tmp_path / "operator"),
            "KUPE_LOG_FORMAT": "json",
        }

    async def run(self, *args: str) -> Result:
        runner = CliRunner()
        return await asyncio.to_thread(runner.invoke, cli, ["admin", *args], env=self.env)

    async def ok(self, *args: str) -> Any:
        result = await self.run(*args)
        assert result.exit_code == 0, (args, result.output, result.stderr)
        return json.loads(result.stdout)

    async def fails(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        return result.stderr


@pytest.fixture
def operator(kupe: Kupe, tmp_path: Path) -> Operator:
    return Operator(kupe, tmp_path)


async def _create(operator: Operator, name: str = "acme", plan: str = "pro") -> TenantCreds:
    out = await operator.ok(
        "create-tenant",
        name,
        "--display-name",
        name.title(),
        "--contact-email",
        f"Boss@{name}.example.com",
        "--plan",
        plan,
    )
    assert out["tenant"]["name"] == name
    assert out["tenant"]["members"] == [{"email": f"boss@{name}.example.com", "role": "admin"}]
    assert out["apiKey"]["key"].startswith("kupe_")
    assert out["apiKey"]["createdBy"] == f"boss@{name}.example.com"
    return TenantCreds(name, out["apiKey"]["key"])


def _catch_up(kupe: Kupe) -> None:
    """The operator commands use the wall clock; move the app's fake clock past it."""
    behind = (datetime.now(UTC) - kupe.clock.now()).total_seconds()
    if behind > 0:
        kupe.clock.advance(behind + 1)


async def test_create_list_and_get_tenants(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    await _create(operator, "globex", "starter")
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 200

    listed = await operator.ok("list-tenants")
    assert [t["name"] for t in listed["items"]] == ["acme", "globex"]
    assert listed["items"][0]["status"]["phase"] == "Active"
    got = await operator.ok("get-tenant", "globex")
    assert got["plan"] == "starter"
    assert got["status"]["poolResources"] == {"cpu": "4", "memory": "8Gi", "storage": "50Gi"}
    assert "not found" in await operator.fails("get-tenant", "nowhere")
    assert "already exists" in await operator.fails(
        "create-tenant", "acme", "--display-name", "A", "--contact-email", "a@b.example.com"
    )


async def test_set_plan_checks_usage_unless_forced(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator, plan="pro")
    for name in ("one", "two", "three"):
        created = await kupe.create_cluster(acme, name, resources={"cpu": "1"})
        assert created.status_code == 201
    assert (await operator.ok("set-plan", "acme", "business"))["plan"] == "business"
    message = await operator.fails("set-plan", "acme", "starter")
    assert "maxClusters" in message
    assert "unknown plan" in await operator.fails("set-plan", "acme", "platinum")
    forced = await operator.ok("set-plan", "acme", "starter", "--force")
    assert forced["plan"] == "starter"
    # Over its limits now, the tenant cannot grow, but keeps what it has.
    more = await kupe.create_cluster(acme, "four", resources={"cpu": "1"})
    assert more.status_code == 403
    assert more.json()["code"] == "PLAN_LIMIT_EXCEEDED"


async def test_suspend_and_resume(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    suspended = await operator.ok("suspend", "acme")
    assert suspended["status"]["phase"] == "Suspended"
    assert (await kupe.client.get(acme.url("/clusters"), headers=acme.headers)).status_code == 200
    refused = await kupe.create_cluster(acme, "more")
    assert refused.status_code == 403
    assert refused.json()["code"] == "TENANT_SUSPENDED"
    # Clusters keep running while suspended.
    _catch_up(kupe)
    await kupe.run_for(10)
    assert await kupe.phase(acme, "web") == "Running"

    resumed = await operator.ok("resume", "acme")
    assert resumed["status"]["phase"] == "Active"
    assert (await kupe.create_cluster(acme, "more")).status_code == 201


async def test_api_keys_and_members(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    issued = await operator.ok(
        "create-api-key", "--tenant", "acme", "--role", "readonly", "--display-name", "ci"
    )
    assert issued["role"] == "readonly"
    assert issued["createdBy"] == "operator"
    readonly = TenantCreds("acme", issued["key"])
    assert (await kupe.client.get(acme.url(), headers=readonly.headers)).status_code == 200

    listed = await operator.ok("list-api-keys", "--tenant", "acme")
    assert issued["id"] in [k["id"] for k in listed["items"]]
    assert issued["key"] not in json.dumps(listed)
    assert all("key" not in k for k in listed["items"])

    assert (await operator.ok("revoke-api-key", issued["id"], "--tenant", "acme"))["revoked"]
    assert (await kupe.client.get(acme.url(), headers=readonly.headers)).status_code == 401
    assert "not found" in await operator.fails("revoke-api-key", issued["id"], "--tenant", "acme")
    assert "ak-" in await operator.fails("revoke-api-key", "bogus", "--tenant", "acme")
    assert "role" in await operator.fails("create-api-key", "--tenant", "acme", "--role", "root")

    added = await operator.ok(
        "add-member", "Carol@Example.com", "--tenant", "acme", "--role", "admin"
    )
    assert added == {"email": "carol@example.com", "role": "admin"}
    members = (await kupe.client.get(acme.url("/members"), headers=acme.headers)).json()
    assert {"email": "carol@example.com", "role": "admin"} in members["items"]
    assert "already a member" in await operator.fails(
        "add-member", "carol@example.com", "--tenant", "acme"
    )


async def test_expiring_operator_key(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    issued = await operator.ok(
        "create-api-key", "--tenant", "acme", "--role", "admin", "--expires-at", "2999-01-01"
    )
    assert issued["expiresAt"] == "2999-01-01T00:00:00Z"
    assert "future" in await operator.fails(
        "create-api-key", "--tenant", "acme", "--role", "admin", "--expires-at", "2001-01-01"
    )
    creds = TenantCreds("acme", issued["key"])
    assert (await kupe.client.get(acme.url(), headers=creds.headers)).status_code == 200


async def test_delete_tenant_without_clusters(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    await _create(operator, "globex")
    assert await operator.ok("delete-tenant", "acme") == {"name": "acme", "deleted": True}
    # Its keys went with it.
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 401
    listed = await operator.ok("list-tenants")
    assert [t["name"] for t in listed["items"]] == ["globex"]
    assert "not found" in await operator.fails("delete-tenant", "acme")


async def _phases(kupe: Kupe, tenant: str) -> dict[str, str]:
    """The phases of a tenant's live clusters, read from the database."""
    async with kupe.runtime.db.read() as session:
        rows = await session.execute(
            select(Cluster.name, Cluster.phase)
            .join(Tenant, Tenant.id == Cluster.tenant_id)
            .where(Tenant.name == tenant, Cluster.removed_at.is_(None))
        )
        return {str(name): str(phase) for name, phase in rows.all()}


async def test_delete_tenant_with_clusters_needs_cascade(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    for name in ("web", "db"):
        assert (await kupe.create_cluster(acme, name)).status_code == 201
    _catch_up(kupe)
    await kupe.run_for(10)

    refused = await operator.fails("delete-tenant", "acme")
    assert "2 cluster(s)" in refused
    assert "--cascade" in refused
    assert await kupe.phase(acme, "web") == "Running"

    started = await operator.ok("delete-tenant", "acme", "--cascade")
    assert started == {
        "name": "acme",
        "deleted": False,
        "phase": "Terminating",
        "clustersRemaining": 2,
    }
    # The clusters are deleted as DELETE /clusters/{name} would; the tenant's keys stop
    # working, but for reading the tenant itself.
    assert await _phases(kupe, "acme") == {"web": "Terminating", "db": "Terminating"}
    tenant = (await kupe.client.get(acme.url(), headers=acme.headers)).json()
    assert tenant["status"]["phase"] == "Terminating"
    for refused_call in (
        await kupe.create_cluster(acme, "new"),
        await kupe.client.get(acme.url("/clusters/web"), headers=acme.headers),
    ):
        assert refused_call.status_code == 409
        assert refused_call.json()["code"] == "TENANT_TERMINATING"
    assert "being deleted" in await operator.fails("resume", "acme")

    # Until the reconciler has torn them down, a re-run reports progress; then the reconciler
    # finishes the tenant's deletion itself.
    again = await operator.ok("delete-tenant", "acme")
    assert again["deleted"] is False
    _catch_up(kupe)
    await kupe.run_for(10)
    assert await _phases(kupe, "acme") == {}
    assert (await kupe.client.get(acme.url(), headers=acme.headers)).status_code == 401
    assert (await operator.ok("list-tenants"))["items"] == []
    assert "not found" in await operator.fails("delete-tenant", "acme")


async def test_wait_gives_up_and_reports_progress(kupe: Kupe, operator: Operator) -> None:
    acme = await _create(operator)
    assert (await kupe.create_cluster(acme, "web")).status_code == 201
    out = await operator.ok("delete-tenant", "acme", "--cascade", "--wait", "0")
    assert out["deleted"] is False
    assert out["clustersRemaining"] == 1
