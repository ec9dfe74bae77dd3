"""Plans (§2): the public catalogue, and the operator's KUPE_PLANS_FILE override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kupe.cli.main import app as cli
from kupe.server.app import create_app
from kupe.server.services.plan import PlanCatalogue, PlanCatalogueError
from tests.support.harness import Kupe, running_kupe, test_settings

TINY = {
    "name": "tiny",
    "displayName": "Tiny",
    "platformFee": "5.00",
    "maxClusters": 1,
    "resourcePool": {"cpu": "2", "memory": "4Gi", "storage": "20Gi"},
    "observabilityPool": {
        "maxActiveSeries": 100,
        "logIngestGB": 1,
        "retentionDays": 7,
        "maxReceivers": 1,
    },
    "dedicatedClusters": False,
    "defaultClusterResources": {"cpu": "500m", "memory": "1Gi", "storage": "5Gi"},
}
UNLIMITED = {
    "name": "enterprise",
    "displayName": "Enterprise",
    "platformFee": "0.00",
    "observabilityPool": {},
    "dedicatedClusters": True,
    "defaultClusterResources": {"cpu": 4, "memory": "16Gi", "storage": "100Gi"},
}


async def test_catalogue_is_public_and_matches_the_contract(kupe: Kupe) -> None:
    response = await kupe.client.get("/api/v1/plans")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [p["name"] for p in items] == ["business", "enterprise", "pro", "starter"]
    by_name = {p["name"]: p for p in items}
    assert by_name["starter"] == {
        "name": "starter",
        "displayName": "Starter",
        "platformFee": "0.00",
        "maxClusters": 2,
        "resourcePool": {"cpu": "4", "memory": "8Gi", "storage": "50Gi"},
        "observabilityPool": {
            "maxActiveSeries": 10000,
            "logIngestGB": 10,
            "retentionDays": 14,
            "maxReceivers": 2,
        },
        "dedicatedClusters": False,
        "defaultClusterResources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
    }
    assert by_name["pro"]["platformFee"] == "49.00"
    assert by_name["pro"]["maxClusters"] == 5
    assert by_name["business"]["dedicatedClusters"] is True
    assert by_name["business"]["resourcePool"] == {
        "cpu": "64",
        "memory": "256Gi",
        "storage": "2000Gi",
    }
    enterprise = by_name["enterprise"]
    # Unlimited is written out: clients read a missing number as 0.
    assert enterprise["maxClusters"] == -1
    assert enterprise["resourcePool"] == {
        "cpu": "unlimited",
        "memory": "unlimited",
        "storage": "unlimited",
    }
    assert enterprise["observabilityPool"] == {
        "maxActiveSeries": -1,
        "logIngestGB": -1,
        "retentionDays": -1,
        "maxReceivers": -1,
    }
    assert enterprise["defaultClusterResources"] == {
        "cpu": "4",
        "memory": "16Gi",
        "storage": "100Gi",
    }


async def test_get_one_plan_and_unknown_plan(kupe: Kupe) -> None:
    got = await kupe.client.get("/api/v1/plans/pro")
    assert got.status_code == 200
    assert got.json()["name"] == "pro"
    missing = await kupe.client.get("/api/v1/plans/platinum")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"
    assert "platinum" in missing.json()["error"]


async def test_yaml_plans_file_replaces_the_catalogue_and_its_limits_apply(
    database_url: str, tmp_path: Path
) -> None:
    import yaml

    plans = tmp_path / "plans.yaml"
    plans.write_text(yaml.safe_dump([TINY, UNLIMITED]))
    settings = test_settings(tmp_path, database_url, plans_file=plans)
    async with running_kupe(settings) as kupe:
        listed = (await kupe.client.get("/api/v1/plans")).json()["items"]
        assert [p["name"] for p in listed] == ["enterprise", "tiny"]
        assert (await kupe.client.get("/api/v1/plans/starter")).status_code == 404
        # YAML numbers are read as quantities.
        assert listed[0]["defaultClusterResources"]["cpu"] == "4"

        acme = await kupe.tenant(plan="tiny")
        first = await kupe.create_cluster(acme, "one")
        assert first.status_code == 201, first.text
        allocated = first.json()["status"]["allocatedResources"]
        assert allocated == {"cpu": "500m", "memory": "1Gi", "storage": "5Gi"}
        second = await kupe.create_cluster(acme, "two")
        assert second.status_code == 403
        assert second.json()["code"] == "PLAN_LIMIT_EXCEEDED"


async def test_json_plans_file_with_items(database_url: str, tmp_path: Path) -> None:
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"items": [TINY, UNLIMITED]}))
    settings = test_settings(tmp_path, database_url, plans_file=plans)
    async with running_kupe(settings) as kupe:
        got = await kupe.client.get("/api/v1/plans/tiny")
        assert got.status_code == 200
        assert got.json() == TINY


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("- name: [", ".yaml", "is not valid YAML"),
        ("{", ".json", "is not valid JSON"),
        ("name: tiny", ".yaml", "must be a list of plans"),
        ("[]", ".yaml", "the plan catalogue is empty"),
        (json.dumps([{**TINY, "maxClusterz": 3}]), ".json", "0.maxClusterz"),
        (
            json.dumps([{k: v for k, v in TINY.items() if k != "displayName"}]),
            ".json",
            "0.displayName",
        ),
        (
            json.dumps([{**TINY, "resourcePool": {"cpu": "2", "memory": "4", "storage": "1Gi"}}]),
            ".json",
            "resourcePool",
        ),
        (json.dumps([{**TINY, "platformFee": "5"}]), ".json", "platformFee"),
        (json.dumps([TINY, TINY]), ".json", "names a plan twice"),
        (json.dumps([{**TINY, "name": "Not A Name"}]), ".json", "plan name"),
        (
            json.dumps([{**TINY, "observabilityPool": {"maxSeries": 1}}]),
            ".json",
            "observabilityPool.maxSeries",
        ),
    ],
)
def test_bad_plans_file_is_refused_with_a_clear_message(
    tmp_path: Path, content: str, suffix: str, expected: str
) -> None:
    path = tmp_path / f"plans{suffix}"
    path.write_text(content)
    with pytest.raises(PlanCatalogueError) as caught:
        PlanCatalogue.load(path)
    assert expected in str(caught.value)


def test_missing_plans_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanCatalogueError, match="cannot read plan catalogue"):
        PlanCatalogue.load(tmp_path / "nope.yaml")


def test_app_refuses_to_start_with_a_bad_plans_file(tmp_path: Path) -> None:
    path = tmp_path / "plans.yaml"
    path.write_text("- name: tiny\n")
    settings = test_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/k.db", plans_file=path)
    with pytest.raises(PlanCatalogueError, match=str(path)):
        create_app(settings)


def test_app_refuses_a_catalogue_without_the_bootstrap_plan(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(json.dumps([TINY]))
    settings = test_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/k.db", plans_file=path)
    with pytest.raises(PlanCatalogueError, match="KUPE_BOOTSTRAP_PLAN 'enterprise'"):
        create_app(settings)


def test_kupe_serve_exits_with_a_clear_error_on_a_bad_plans_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Process-wide logging setup would outlive this test (and point at the runner's closed
    # stderr); it plays no part in what is tested here.
    monkeypatch.setattr("kupe.server.logging.configure_logging", lambda settings: None)
    path = tmp_path / "plans.yaml"
    path.write_text(yaml_with_typo())
    result = CliRunner().invoke(
        cli,
        ["serve"],
        env={
            "KUPE_PLANS_FILE": str(path),
            "KUPE_DATA_DIR": str(tmp_path / "data"),
            "KUPE_LOG_FORMAT": "json",
        },
    )
    assert result.exit_code == 2, result.output
    assert "invalid configuration" in result.stderr
    assert str(path) in result.stderr
    assert "maxClusterz" in result.stderr
    assert "Traceback" not in result.output


def yaml_with_typo() -> str:
    import yaml

    return yaml.safe_dump([{**UNLIMITED, "maxClusterz": 3}])


async def test_the_versions_on_offer_are_listed_newest_as_default(kupe: Kupe) -> None:
    response = await kupe.client.get("/api/v1/versions")
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["version"] for item in items] == [f"1.{minor}" for minor in range(31, 38)]
    assert items[-1] == {"version": "1.37", "kubernetesVersion": "v1.37.2", "default": True}
    assert [item["default"] for item in items].count(True) == 1
