"""Property-based tests through the API: pagination never skips or repeats a cluster while
clusters come and go between pages, and PATCH of a cluster is an RFC 7396 merge patch.

Hypothesis drives a synchronous test; the app runs on its own loop (tests/support/threaded.py)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kupe.core.merge_patch import merge_patch
from tests.support.harness import Kupe, TenantCreds, test_settings
from tests.support.threaded import app_in_thread

names = st.from_regex(r"\A[a-z][a-z0-9]{1,5}\Z")
PROPERTY = settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
GENEROUS = {"rate_limit_burst": 1_000_000, "rate_limit_rps": 1_000_000}


class Driver:
    """Synchronous calls into the app running on the portal's loop."""

    def __init__(self, portal: BlockingPortal, kupe: Kupe) -> None:
        self.portal = portal
        self.kupe = kupe
        self._tenants = itertools.count()

    def tenant(self) -> TenantCreds:
        return self.portal.call(self.kupe.tenant, f"t{next(self._tenants)}", "enterprise")

    def request(self, method: str, url: str, creds: TenantCreds, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self.kupe.client.request(method, url, headers=creds.headers, **kwargs)

        return self.portal.call(call)

    def run_for(self, seconds: float) -> None:
        self.portal.call(self.kupe.run_for, seconds)


def test_pagination_neither_skips_nor_repeats(database_url: str, tmp_path: Path) -> None:
    with app_in_thread(test_settings(tmp_path, database_url, **GENEROUS)) as (portal, kupe):
        driver = Driver(portal, kupe)

        @PROPERTY
        @given(
            initial=st.lists(names, min_size=0, max_size=12, unique=True),
            limit=st.integers(min_value=1, max_value=4),
            data=st.data(),
        )
        def check(initial: list[str], limit: int, data: st.DataObject) -> None:
            creds = driver.tenant()
            live = set()

            def create(name: str) -> None:
                created = driver.request(
                    "POST",
                    creds.url("/clusters"),
                    creds,
                    json={"name": name, "displayName": name, "type": "shared"},
                )
                assert created.status_code == 201, created.text
                live.add(name)

            for name in initial:
                create(name)
            ever = set(live)
            touched: set[str] = set()  # deleted (or created) while the listing was under way
            seen: list[str] = []
            token: str | None = None
            while True:
                params: dict[str, Any] = {"limit": limit}
                if token is not None:
                    params["continue"] = token
                page = driver.request("GET", creds.url("/clusters"), creds, params=params)
                assert page.status_code == 200, page.text
                body = page.json()
                assert len(body["items"]) <= limit
                seen.extend(item["name"] for item in body["items"])
                token = body.get("continue")
                if token is None:
                    break
                for _ in range(data.draw(st.integers(min_value=0, max_value=3), label="changes")):
                    if live and data.draw(st.booleans(), label="delete?"):
                        victim = data.draw(st.sampled_from(sorted(live)), label="victim")
                        gone = driver.request("DELETE", creds.url(f"/clusters/{victim}"), creds)
                        assert gone.status_code == 204, gone.text
                        live.discard(victim)
                        touched.add(victim)
                    else:
                        name = data.draw(names.filter(lambda n: n not in ever), label="new")
                        create(name)
                        ever.add(name)
                        touched.add(name)
                if data.draw(st.booleans(), label="reconcile?"):
                    driver.run_for(5)  # deletions complete; rows really disappear
            assert len(seen) == len(set(seen)), f"repeated: {seen}"
            assert seen == sorted(seen), f"out of order: {seen}"
            assert set(seen) <= ever
            untouched = set(initial) - touched
            assert untouched <= set(seen), f"skipped: {sorted(untouched - set(seen))}"

        check()


json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=6)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
alerts_patches = st.none() | st.dictionaries(
    st.text(min_size=1, max_size=4), json_values, max_size=4
)
resources_patches = st.fixed_dictionaries(
    {},
    optional={
        "cpu": st.sampled_from(["1", "2", "500m"]),
        "memory": st.sampled_from(["2Gi", "3Gi"]),
    },
)
patches = st.fixed_dictionaries(
    {}, optional={"alerts": alerts_patches, "resources": resources_patches}
)


def test_cluster_patch_is_a_json_merge_patch(database_url: str, tmp_path: Path) -> None:
    with app_in_thread(test_settings(tmp_path, database_url, **GENEROUS)) as (portal, kupe):
        driver = Driver(portal, kupe)

        @PROPERTY
        @given(st.lists(patches, min_size=1, max_size=5))
        def check(sequence: list[dict[str, Any]]) -> None:
            creds = driver.tenant()
            created = driver.request(
                "POST",
                creds.url("/clusters"),
                creds,
                json={"name": "web", "displayName": "Web", "type": "shared"},
            )
            assert created.status_code == 201, created.text
            model = created.json()
            for patch in sequence:
                response = driver.request("PATCH", creds.url("/clusters/web"), creds, json=patch)
                assert response.status_code == 200, (patch, response.text)
                if "alerts" in patch:
                    alerts = patch["alerts"]
                    merged = (
                        None if alerts is None else merge_patch(model.get("alerts") or {}, alerts)
                    )
                    model["alerts"] = merged
                if "resources" in patch:
                    # A field once set stays set; the effective allocation follows it.
                    merged_resources = {**model.get("resources", {}), **patch["resources"]}
                    if merged_resources:  # `resources` is absent while nothing was ever set
                        model["resources"] = merged_resources
                    allocated = model["status"]["allocatedResources"]
                    model["status"]["allocatedResources"] = {**allocated, **patch["resources"]}
                got = response.json()
                assert got.get("alerts") == model.get("alerts"), patch
                assert got.get("resources") == model.get("resources"), patch
                allocated = got["status"]["allocatedResources"]
                assert allocated == model["status"]["allocatedResources"], patch
                assert got["name"] == "web"
            reread = driver.request("GET", creds.url("/clusters/web"), creds).json()
            assert reread.get("alerts") == model.get("alerts")
            assert reread.get("resources") == model.get("resources")

        check()
