"""`kupe local install`: a second run does nothing; missing `go`, an unknown minor and a failed
build each end in one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kupe.server.providers.local.binaries import KUBERNETES_PATCHES, BinaryCache, kubernetes
from kupe.server.providers.local.install import BuildFailed, Installer, UnknownVersion
from tests.local.conftest import CACHE_DIR, VERSIONS

KUPE = Path(sys.executable).parent / "kupe"


def run_kupe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KUPE_")}
    environ.update(env)
    return subprocess.run(
        [str(KUPE), "local", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def test_a_second_install_changes_nothing(local_binaries: BinaryCache) -> None:
    files = sorted(p for p in CACHE_DIR.glob("*/v*/*") if p.is_file())
    before = {path: path.stat().st_mtime_ns for path in files}
    began = time.monotonic()
    done = run_kupe(
        "install", "--versions", ",".join(VERSIONS), KUPE_LOCAL_CACHE_DIR=str(CACHE_DIR)
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 20
    assert done.stderr.count("already installed") == 2 + len(VERSIONS)
    assert {path: path.stat().st_mtime_ns for path in files} == before
    # What is installed reports its real version.
    for minor in VERSIONS:
        binary = local_binaries.directory(kubernetes(minor)) / "kube-apiserver"
        printed = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
        assert printed.strip() == f"Kubernetes {KUBERNETES_PATCHES[minor]}"
    listed = run_kupe("versions", KUPE_LOCAL_CACHE_DIR=str(CACHE_DIR))
    assert "1.37   v1.37.2   yes     yes" in listed.stdout


def test_without_go_the_error_is_one_line(tmp_path: Path) -> None:
    empty_cache = tmp_path / "cache"
    failed = run_kupe(
        "install",
        "--versions",
        "1.36",
        KUPE_LOCAL_CACHE_DIR=str(empty_cache),
        PATH=str(KUPE.parent),  # the venv, without go
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "kupe: `go` was not found on PATH: kupe local install builds Kubernetes from source "
        "and needs the Go toolchain (1.26 or newer)"
    ]
    assert not list(empty_cache.glob("*/v*/*"))


def test_a_minor_without_recipe_lists_what_is_available(tmp_path: Path) -> None:
    failed = run_kupe("install", "--versions", "1.29", KUPE_LOCAL_CACHE_DIR=str(tmp_path))
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "kupe: no build recipe for Kubernetes 1.29; available: 1.36, 1.37"
    )
    with pytest.raises(UnknownVersion, match=r"Kubernetes 1\.31; available: 1\.36, 1\.37"):
        Installer(BinaryCache(tmp_path)).install(["1.31"])


def test_a_failed_build_ends_with_what_go_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real go that cannot reach any module: an empty module cache and the proxy turned off.
    monkeypatch.setenv("GOPROXY", "off")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GOTOOLCHAIN", "local")
    with pytest.raises(BuildFailed) as failure:
        Installer(BinaryCache(tmp_path / "cache")).install(["1.36"])
    message = str(failure.value)
    assert message.startswith("building etcd v3.6.16 failed (go list):")
    assert "GOPROXY=off" in message
    assert "\n" not in message
    assert not (tmp_path / "cache" / "etcd" / "v3.6.16" / "etcd").exists()
