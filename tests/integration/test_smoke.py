from __future__ import annotations

from tests.support.harness import Kupe


async def test_guide_flow(kupe: Kupe) -> None:
    acme = await kupe.tenant()
    created = await kupe.create_cluster(
        acme,
        "production",
        version="1.31",
        resources={"cpu": "4", "memory": "16Gi", "storage": "100Gi"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["status"]["phase"] == "Pending"
    await kupe.run_for(10)
    assert await kupe.phase(acme, "production") == "Running"
