"""Kupe's Secrets in a cluster: written, replaced and removed through the cluster's API, never
touching a Secret that Kupe does not manage."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from kupe.server.providers.base import InfraPhase, SecretConflict, SecretCopy, SecretSync
from kupe.server.providers.local.provider import LocalProvider
from tests.local.support import admin_kubeconfig, kubectl, kubectl_json, spec, wait_for


async def test_secrets_are_written_replaced_and_removed_only_when_kupe_owns_them(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
    tmp_path: Path,
) -> None:
    provider = make_provider()
    assert isinstance(provider, SecretSync)
    wanted = spec()
    cleanup.append((provider, wanted.id))
    await provider.ensure(wanted)
    state = await wait_for(provider, wanted.id, InfraPhase.READY)
    config = admin_kubeconfig(provider.workdir.cluster_dir(wanted.id), state.endpoint, tmp_path)

    # A namespace that does not exist yet is created.
    first = SecretCopy("team-a", "db", {"password": b"s3cr\x00t"}, {"tier": "db"}, {"note": "x"})
    await provider.write_secret(wanted.id, first)
    stored = await kubectl_json(config, "get", "secret", "db", "-n", "team-a")
    assert stored["type"] == "Opaque"
    assert stored["metadata"]["labels"] == {"tier": "db", "app.kubernetes.io/managed-by": "kupe"}
    assert base64.b64decode(stored["data"]["password"]) == b"s3cr\x00t"
    read = await provider.read_secret(wanted.id, "team-a", "db")
    assert read is not None
    assert read.data == {"password": b"s3cr\x00t"}
    assert read.annotations == {"note": "x"}

    # Writing again replaces it (keys removed too).
    await provider.write_secret(wanted.id, SecretCopy("team-a", "db", {"user": b"app"}))
    read = await provider.read_secret(wanted.id, "team-a", "db")
    assert read is not None
    assert read.data == {"user": b"app"}

    # Someone else's Secret of that name: a conflict, and it stays as it was.
    mine = await kubectl(config, "create", "secret", "generic", "theirs", "--from-literal=k=v")
    assert mine.code == 0, mine.err
    with pytest.raises(SecretConflict):
        await provider.write_secret(wanted.id, SecretCopy("default", "theirs", {"k": b"kupe"}))
    await provider.delete_secret(wanted.id, "default", "theirs")
    untouched = await kubectl_json(config, "get", "secret", "theirs")
    assert base64.b64decode(untouched["data"]["k"]) == b"v"
    assert "labels" not in untouched["metadata"]

    # Kupe's goes; deleting twice is fine; a missing one reads as None.
    await provider.delete_secret(wanted.id, "team-a", "db")
    await provider.delete_secret(wanted.id, "team-a", "db")
    assert await provider.read_secret(wanted.id, "team-a", "db") is None
    gone = await kubectl(config, "get", "secret", "db", "-n", "team-a")
    assert "NotFound" in gone.err
