"""Where the Alertmanager binaries live in the cache (`<cache>/alertmanager/v0.28.1/`), and
the component that builds them.

Both `alertmanager` and `amtool` come from v0.28.1, one consumer module: the checker then runs
exactly the configuration loader of the server that serves the configuration (v0.35.0's
`amtool` builds too, but its module lacks the UI assets its server embeds, and a newer
checker would accept fields the v0.28.1 server refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kupe.server.providers.local.binaries import BinaryCache, Component

ALERTMANAGER_VERSION: Final = "v0.28.1"
ALERTMANAGER: Final = Component(
    "alertmanager",
    ALERTMANAGER_VERSION,
    ("alertmanager", "amtool"),
    recipes=Path(__file__).parent / "modules",
    packages=(
        "github.com/prometheus/alertmanager/cmd/alertmanager",
        "github.com/prometheus/alertmanager/cmd/amtool",
    ),
    version_variable="github.com/prometheus/common/version.Version",
)


@dataclass(frozen=True)
class AlertmanagerBinaries:
    """Paths of the two binaries; `installed` when a verified build is there."""

    alertmanager: Path
    amtool: Path
    installed: bool


def find_binaries(cache_dir: Path) -> AlertmanagerBinaries:
    """The binaries in `cache_dir`, and whether a verified build of them is there."""
    cache = BinaryCache(cache_dir)
    return AlertmanagerBinaries(
        alertmanager=cache.binary(ALERTMANAGER, "alertmanager"),
        amtool=cache.binary(ALERTMANAGER, "amtool"),
        installed=cache.is_verified(ALERTMANAGER),
    )
