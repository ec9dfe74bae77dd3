"""Building Alertmanager: a second run does nothing; without go, one clear line and nothing
in the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kupe.server.alertmanager.binaries import ALERTMANAGER, find_binaries

KUPE = Path(sys.executable).parent / "kupe"
CACHE_DIR = Path(os.environ.get("KUPE_LOCAL_CACHE_DIR") or Path.home() / ".cache" / "kupe")


def run_kupe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUPE), "local", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=1800,
        check=False,
    )


def test_recipe_ships_with_the_package() -> None:
    assert ALERTMANAGER.has_recipe()


def test_without_go_one_line_and_an_empty_cache(tmp_path: Path) -> None:
    empty = tmp_path / "cache"
    failed = run_kupe(
        "install-alertmanager", KUPE_LOCAL_CACHE_DIR=str(empty), PATH=str(KUPE.parent)
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        "kupe: `go` was not found on PATH: Kupe builds Alertmanager from source and needs "
        "the Go toolchain (1.26 or newer)"
    ]
    assert not find_binaries(empty).installed
    assert not list(empty.glob("alertmanager/v*/*"))


def test_installed_build_is_found_and_a_second_run_does_nothing() -> None:
    first = run_kupe("install-alertmanager", KUPE_LOCAL_CACHE_DIR=str(CACHE_DIR))
    assert first.returncode == 0, first.stderr
    binaries = find_binaries(CACHE_DIR)
    assert binaries.installed
    before = binaries.amtool.stat().st_mtime_ns
    again = run_kupe("install-alertmanager", KUPE_LOCAL_CACHE_DIR=str(CACHE_DIR))
    assert again.returncode == 0
    assert "already installed" in again.stderr
    assert binaries.amtool.stat().st_mtime_ns == before
