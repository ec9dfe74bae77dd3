"""One real `kupe serve` on loopback shared by the end-to-end tests of the CLI and sync SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live_server import LiveKupe, live_kupe

FAIL_PATTERN = "^doomed"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKupe]:
    """A server whose clusters named doomed* fail permanently (KUPE_SIM_FAIL_PATTERN)."""
    with live_kupe(
        tmp_path_factory.mktemp("live-kupe"), {"KUPE_SIM_FAIL_PATTERN": FAIL_PATTERN}
    ) as server:
        yield server
