"""`kupe alerting install`: build Alertmanager with the local provider's installer (the same
cache, the same `go build` recipe); a second run finds the verified build and does nothing."""

from __future__ import annotations

from pathlib import Path

from kupe.server.alertmanager.binaries import ALERTMANAGER
from kupe.server.providers.local.binaries import BinaryCache
from kupe.server.providers.local.install import Installer, InstallReporter, InstallResult


def install_alertmanager(
    cache_dir: Path, reporter: InstallReporter | None = None, go: str = "go"
) -> InstallResult:
    """Make sure `alertmanager` and `amtool` are in the cache and verified (built if not);
    InstallError (GoNotFound, BuildFailed) with a one-line message otherwise."""
    installer = Installer(BinaryCache(cache_dir), reporter, go, purpose="Kupe builds Alertmanager")
    return installer.install_components([ALERTMANAGER])[0]
