"""The cluster's `alerts.managedRules`: overrides of the platform's managed rules, validated
(unknown rule or setting: 400 naming it, nothing changed) and recorded by the provider."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from kupe.schemas.cluster_alerts import enabled_rules
from tests.support.harness import Kupe, running_kupe, test_settings


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    async with running_kupe(test_settings(tmp_path, database_url)) as app:
        yield app


async def test_managed_rules_are_validated_and_reach_the_provider(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    unknown = await kupe.create_cluster(
        acme, "web", alerts={"managedRules": {"podCrashLoopin": {"enabled": True}}}
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "alerts"
    assert "alerts.managedRules.podCrashLoopin is not a managed rule" in unknown.json()["error"]
    alerts = {"managedRules": {"podCrashLooping": {"enabled": True, "severity": "critical"}}}
    created = await kupe.create_cluster(acme, "web", alerts=alerts)
    assert created.status_code == 201, created.text
    url = acme.url("/clusters/web")
    bad = await kupe.client.patch(
        url, json={"alerts": {"managedRules": {"jobFailed": {"for": "soon"}}}}, headers=acme.headers
    )
    assert bad.status_code == 400
    assert "alerts.managedRules.jobFailed.for" in bad.json()["error"]
    patched = await kupe.client.patch(
        url,
        json={
            "alerts": {"managedRules": {"jobFailed": {"enabled": True}, "podCrashLooping": None}}
        },
        headers=acme.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["alerts"] == {"managedRules": {"jobFailed": {"enabled": True}}}
    await kupe.run_for(9)
    async with kupe.runtime.db.read() as session:
        cluster_id = await session.scalar(text("SELECT id FROM clusters WHERE name = 'web'"))
    state = await kupe.runtime.provider.observe(str(cluster_id))
    assert state is not None
    recorded = json.loads(state.alerts)
    assert [rule.alert for rule in enabled_rules(recorded)] == ["KubeJobFailed"]
