"""Retries against a real server whose rate limiter answers 429 with Retry-After: the CLI and
SDK wait as told and succeed, instead of failing the user's command."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kupe.cli.main import app
from kupe.sdk import Client, RateLimited, RetryPolicy
from tests.support.live_server import LiveKupe, live_kupe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKupe]:
    settings = {"KUPE_RATE_LIMIT_RPS": "1", "KUPE_RATE_LIMIT_BURST": "2"}
    with live_kupe(tmp_path_factory.mktemp("strict-kupe"), settings) as server:
        yield server


def rate_limited_lines(server: LiveKupe) -> int:
    return sum(
        1
        for line in server.log().splitlines()
        if line.startswith("{") and json.loads(line).get("status") == 429
    )


def test_cli_commands_ride_out_429s(strict_server: LiveKupe, tmp_path: Path) -> None:
    before = rate_limited_lines(strict_server)
    env = {**strict_server.client_env(tmp_path), "KUPE_PROFILE": None}
    started = time.monotonic()
    for _ in range(5):
        result = CliRunner().invoke(app, ["clusters", "list", "-o", "json"], env=env)
        assert result.exit_code == 0, result.output
        assert "items" in json.loads(result.stdout)
    # Five requests at one per second after a burst of two: the server said 429 and we waited.
    assert rate_limited_lines(strict_server) > before
    assert time.monotonic() - started >= 1.0


def test_sdk_gives_up_when_told_not_to_retry(strict_server: LiveKupe) -> None:
    with Client(
        strict_server.url,
        api_key=strict_server.key,
        tenant="default",
        retry=RetryPolicy(max_retries=0),
    ) as kupe:

        def burst() -> None:
            for _ in range(10):
                kupe.clusters.list()

        with pytest.raises(RateLimited) as caught:
            burst()
        assert caught.value.retry_after is not None
        assert caught.value.retry_after >= 1
        assert caught.value.request_id
