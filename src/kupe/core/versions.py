"""The Kubernetes version catalogue: supported minors, the current patch of each, and what an
installation offers (the catalogue, narrowed to what its provider can run)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from kupe.core.errors import UnsupportedUpgrade, UnsupportedVersion

# Every minor from 1.31 to 1.37 at its newest patch (API §4).
CURRENT_PATCHES: dict[str, str] = {
    "1.31": "v1.31.14",
    "1.32": "v1.32.13",
    "1.33": "v1.33.13",
    "1.34": "v1.34.4",
    "1.35": "v1.35.4",
    "1.36": "v1.36.3",
    "1.37": "v1.37.2",
}


def minor_of(version: str) -> int:
    return int(version.split(".")[1])


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(sorted(CURRENT_PATCHES, key=minor_of))
DEFAULT_VERSION = SUPPORTED_VERSIONS[-1]


def patch_version(minor: str) -> str:
    """The full Kubernetes version (e.g. v1.32.13) that the platform runs for a minor."""
    return CURRENT_PATCHES[minor]


class VersionCatalogue:
    """The minors clusters may be created at or upgraded to: the catalogue's, narrowed by
    `offered` (the provider's, asked each time: a local provider's set grows as binaries are
    installed; None means all of them)."""

    def __init__(
        self,
        patches: Mapping[str, str] = CURRENT_PATCHES,
        offered: Callable[[], Sequence[str] | None] = lambda: None,
    ) -> None:
        self.patches = dict(patches)
        self._offered = offered

    def available(self) -> list[str]:
        offered = self._offered()
        minors = [v for v in self.patches if offered is None or v in offered]
        return sorted(minors, key=minor_of)

    def default(self) -> str:
        """The newest available minor; 400 when there is none at all."""
        available = self.available()
        if not available:
            raise UnsupportedVersion(
                "no Kubernetes version is available on this installation", field="version"
            )
        return available[-1]

    def check_supported(self, version: str) -> str:
        """Return `version` when it is available, else raise UNSUPPORTED_VERSION listing
        those that are."""
        available = self.available()
        if version not in available:
            offered = ", ".join(available) or "none"
            raise UnsupportedVersion(
                f"version {version!r} is not supported; available: {offered}", field="version"
            )
        return version

    def check_upgrade(self, current: str, target: str) -> None:
        """Allow staying put or moving exactly one minor forward; anything else is refused."""
        if target == current:
            return
        self.check_supported(target)
        if minor_of(target) != minor_of(current) + 1:
            raise UnsupportedUpgrade(
                f"cannot change version from {current} to {target}: "
                "upgrades go one minor version at a time and never down",
                field="version",
            )
