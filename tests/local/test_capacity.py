"""Beyond max_clusters a new cluster waits, saying why, and proceeds when room frees up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kupe.server.providers.base import InfraPhase, PermanentProviderError
from kupe.server.providers.local.processes import cluster_processes
from kupe.server.providers.local.provider import LocalProvider
from tests.local.support import spec, wait_for
from tests.local.test_lifecycle import alive


async def test_a_cluster_beyond_capacity_waits_until_another_is_deleted(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
    own_workdir: Path,
) -> None:
    provider = make_provider(workdir=own_workdir, max_clusters=1)
    first, second = spec(), spec()
    cleanup.extend([(provider, first.id), (provider, second.id)])
    assert (await provider.ensure(first)).phase is InfraPhase.READY

    waiting = await provider.ensure(second)
    assert waiting.phase is InfraPhase.CREATING
    assert waiting.message == "waiting for capacity: 1 of 1 local clusters are running"
    assert await provider.observe(second.id) is None  # nothing was started for it
    # Another Kupe process on the same workdir counts the same clusters.
    other = make_provider(workdir=own_workdir, max_clusters=1)
    assert (await other.ensure(second)).message.startswith("waiting for capacity")

    pids = [p.pid for p in cluster_processes(provider.workdir.cluster_dir(first.id))]
    await provider.delete(first.id)
    assert [pid for pid in pids if alive(pid)] == []
    ready = await provider.ensure(second)
    assert ready.phase is InfraPhase.READY
    assert ready.matches(second)
    await wait_for(other, second.id, InfraPhase.READY)


async def test_versions_offered_are_those_installed(
    make_provider: Callable[..., LocalProvider],
) -> None:
    provider = make_provider()
    assert provider.offered_versions() == ["1.36", "1.37"]
    with pytest.raises(PermanentProviderError, match=r"1\.35 is not installed.*1\.36, 1\.37"):
        await provider.ensure(spec("1.35"))
    with pytest.raises(PermanentProviderError, match="cannot name a local cluster"):
        await provider.observe("../../etc")
