"""Merging a Kupe kubeconfig into an existing one without touching the other entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from kupe.cli import kubeconfig
from kupe.core.kubeconfig import build_kubeconfig

NEW = build_kubeconfig("acme", "prod", "https://prod.acme.example", "Q0E=")


def test_merge_replaces_same_names_and_keeps_the_rest() -> None:
    existing = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {"colors": True},
        "clusters": [
            {"name": "other", "cluster": {"server": "https://other"}},
            {"name": "kupe-acme-prod", "cluster": {"server": "https://stale"}},
        ],
        "users": [{"name": "other", "user": {"token": "t"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
        "current-context": "other",
    }
    merged = kubeconfig.merge(existing, NEW)
    assert merged["preferences"] == {"colors": True}
    assert merged["current-context"] == "kupe-acme-prod"
    clusters = merged["clusters"]
    assert isinstance(clusters, list)
    assert [c["name"] for c in clusters] == ["other", "kupe-acme-prod"]
    assert clusters[1]["cluster"]["server"] == "https://prod.acme.example"
    assert merged["users"][0] == {"name": "other", "user": {"token": "t"}}  # type: ignore[index]


def test_merge_into_nothing_is_the_document_itself() -> None:
    assert kubeconfig.merge({}, NEW)["contexts"] == NEW["contexts"]


def test_a_malformed_existing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("- just\n- a list\n")
    with pytest.raises(kubeconfig.KubeconfigFileError, match="not a kubeconfig"):
        kubeconfig.read(path)
    with pytest.raises(kubeconfig.KubeconfigFileError, match="must be a list"):
        kubeconfig.merge({"clusters": {"a": 1}}, NEW)


def test_default_path_follows_kubeconfig(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert kubeconfig.default_path({"KUBECONFIG": f"{first}:{second}"}) == first
    assert kubeconfig.default_path({}).parts[-2:] == (".kube", "config")
