"""The Kubernetes version catalogue: supported minors and the current patch of each."""

from __future__ import annotations

from kupe.core.errors import UnsupportedUpgrade, UnsupportedVersion

CURRENT_PATCHES: dict[str, str] = {
    "1.31": "v1.31.9",
    "1.32": "v1.32.5",
    "1.33": "v1.33.1",
}


def _minor(version: str) -> int:
    return int(version.split(".")[1])


SUPPORTED_VERSIONS: tuple[str, ...] = tuple(sorted(CURRENT_PATCHES, key=_minor))
DEFAULT_VERSION = SUPPORTED_VERSIONS[-1]


def check_supported(version: str) -> str:
    """Return `version` when it is a supported minor, else raise UNSUPPORTED_VERSION."""
    if version not in CURRENT_PATCHES:
        raise UnsupportedVersion(
            f"version {version!r} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}",
            field="version",
        )
    return version


def check_upgrade(current: str, target: str) -> None:
    """Allow staying put or moving exactly one minor forward; anything else is refused."""
    check_supported(target)
    if target == current:
        return
    if _minor(target) != _minor(current) + 1:
        raise UnsupportedUpgrade(
            f"cannot change version from {current} to {target}: "
            "upgrades go one minor version at a time and never down",
            field="version",
        )


def patch_version(minor: str) -> str:
    """The full Kubernetes version (e.g. v1.32.5) that the platform runs for a minor."""
    return CURRENT_PATCHES[minor]
