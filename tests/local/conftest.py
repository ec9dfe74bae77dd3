"""Fixtures of the local provider's tests: the real binaries (built through `kupe local install`'s
code if the cache lacks them), a TokenReview server, providers on a shared workdir, and clean-up
that stops every process a test started, also when it fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kupe.core.clock import SystemClock
from kupe.server.metrics import Metrics
from kupe.server.providers.local import LocalSettings
from kupe.server.providers.local.binaries import BinaryCache
from kupe.server.providers.local.install import Installer
from kupe.server.providers.local.processes import kill_all
from kupe.server.providers.local.provider import LocalProvider
from kupe.server.providers.registry import ProviderContext
from tests.local.support import TokenReviews, token_review_server, worker_ports

CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")
VERSIONS = ("1.36", "1.37")
# A cold build of two Kubernetes minors, etcd and kwok takes 20-30 minutes on 2 cores.
COLD_BUILD_TIMEOUT = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give the first local test (it builds the binaries, if they are missing) time to."""
    local = [item for item in items if "tests/local/" in str(item.path)]
    installed = BinaryCache(CACHE_DIR).installed_minors()
    if local and not set(VERSIONS) <= set(installed):
        local[0].add_marker(pytest.mark.timeout(COLD_BUILD_TIMEOUT))


@pytest.fixture(scope="session", autouse=True)
def local_binaries() -> BinaryCache:
    """The binaries, installed through the install code: built if missing, else reused."""
    cache = BinaryCache(CACHE_DIR)
    Installer(cache).install(VERSIONS)
    return cache


@pytest.fixture(scope="session")
def local_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where every workdir of the run lives; at the end, anything still running from it is
    killed (a safety net: tests delete their clusters themselves)."""
    base = tmp_path_factory.mktemp("local")
    yield base
    kill_all(base)


@pytest.fixture(scope="session")
def shared_workdir(local_base: Path) -> Path:
    return local_base / "shared"


@pytest.fixture(scope="session")
def token_reviews() -> Iterator[TokenReviews]:
    with token_review_server() as reviews:
        yield reviews


@pytest.fixture
async def make_provider(
    shared_workdir: Path, token_reviews: TokenReviews, tmp_path: Path
) -> AsyncIterator[Callable[..., LocalProvider]]:
    """Build providers (as separate Kupe processes would) on the shared workdir by default."""
    made: list[LocalProvider] = []

    def make(**settings: Any) -> LocalProvider:
        settings.setdefault("workdir", shared_workdir)
        settings.setdefault("port_min", worker_ports()[0])
        settings.setdefault("port_max", worker_ports()[1])
        context = ProviderContext(
            clock=SystemClock(),
            metrics=Metrics(),
            data_dir=tmp_path,
            cluster_domain="local.test",
            api_url=token_reviews.url,
        )
        provider = LocalProvider(LocalSettings(cache_dir=CACHE_DIR, **settings), context)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def own_workdir(local_base: Path) -> Path:
    """A workdir no other test shares (for tests that count clusters)."""
    return local_base / f"own-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def cleanup(
    make_provider: Callable[..., LocalProvider],
) -> AsyncIterator[list[tuple[LocalProvider, str]]]:
    """Clusters a test registers here are deleted when it ends, whatever happened."""
    created: list[tuple[LocalProvider, str]] = []
    yield created
    for provider, cluster_id in reversed(created):
        await provider.delete(cluster_id)
