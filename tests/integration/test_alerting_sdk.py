"""`client.alerting` (async SDK) on the app in-process: documents with their ETags, the
`"<secret>"` round-trip, If-Match, and the errors mapped back to the SDK's classes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kupe.sdk import AsyncClient, Conflict, PreconditionFailed
from kupe.sdk.errors import BadRequest
from kupe.server.alertmanager.install import install_alertmanager
from tests.support.harness import Kupe, running_kupe, test_settings

CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")
HOOK = "https://hooks.example.com/sdk-t0ken"


@pytest.fixture
async def kupe(database_url: str, tmp_path: Path) -> AsyncIterator[Kupe]:
    install_alertmanager(CACHE_DIR)
    settings = test_settings(
        tmp_path, database_url, alerting={"backend": "none", "cache_dir": CACHE_DIR}
    )
    async with running_kupe(settings) as app:
        yield app


async def test_alerting_through_the_sdk(kupe: Kupe) -> None:
    acme = await kupe.tenant("acme")
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=kupe.app))
    async with (
        http,
        AsyncClient("http://kupe.test", api_key=acme.key, tenant="acme", http_client=http) as sdk,
    ):
        stored = await sdk.alerting.put_receiver("oncall", {"webhook_configs": [{"url": HOOK}]})
        assert stored.body == {"name": "oncall", "webhook_configs": [{"url": "<secret>"}]}
        assert stored.etag
        again = await sdk.alerting.put_receiver("oncall", stored.body, if_match=stored.etag)
        assert again.etag == stored.etag  # sent back as read: nothing changed
        with pytest.raises(PreconditionFailed):
            await sdk.alerting.put_receiver(
                "oncall", {"webhook_configs": [{"url": HOOK + "2"}]}, if_match='"1"'
            )
        routes = await sdk.alerting.put_routes([{"receiver": "oncall"}])
        assert routes.body == {"items": [{"receiver": "oncall"}]}
        with pytest.raises(Conflict):
            await sdk.alerting.delete_receiver("oncall")
        with pytest.raises(BadRequest):
            await sdk.alerting.put_global({"resolve_timeout": "later"})
        assert [r["name"] for r in await sdk.alerting.receivers()] == ["oncall"]
        config = await sdk.alerting.config()
        assert HOOK not in str(config.body)
        assert (await sdk.alerting.put_routes(None)).body == {"items": []}
        await sdk.alerting.delete_receiver("oncall")
        assert await sdk.alerting.receivers() == []
