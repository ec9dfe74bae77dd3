"""The binary cache of the local provider: which versions exist, where their binaries live, and
whether a build of them was verified.

Layout (under the cache dir, `~/.cache/kupe` by default):
`kubernetes/v1.36.3/{kube-apiserver,kube-controller-manager,kube-scheduler}`,
`etcd/v3.6.16/etcd`, `kwok/v0.8.0/{kwok,kwokctl}`; each directory holds a `.kupe-verified`
marker once its binaries were checked to report the expected version.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The newest patch of every minor the platform's catalogue knows.
KUBERNETES_PATCHES: Final[dict[str, str]] = {
    "1.31": "v1.31.14",
    "1.32": "v1.32.13",
    "1.33": "v1.33.13",
    "1.34": "v1.34.4",
    "1.35": "v1.35.4",
    "1.36": "v1.36.3",
    "1.37": "v1.37.2",
}
ETCD_VERSION: Final = "v3.6.16"
KWOK_VERSION: Final = "v0.8.0"
KUBERNETES_BINARIES: Final = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KWOK_BINARIES: Final = ("kwok", "kwokctl")
MARKER: Final = ".kupe-verified"
# The consumer modules (go.mod + go.sum) that pin every build, shipped with the package.
MODULES_DIR: Final = Path(__file__).parent / "modules"


def minor_key(minor: str) -> int:
    """Sort key of a minor such as "1.36"."""
    return int(minor.split(".")[1])


@dataclass(frozen=True)
class Component:
    """One versioned set of binaries built from one consumer module."""

    kind: str  # "kubernetes", "etcd", "kwok" or another package's component
    version: str  # the module version, e.g. "v1.36.3"
    binaries: tuple[str, ...]
    # Where the consumer module lives (another package may ship its own recipes), the
    # packages to build (empty: the provider's own), and, for binaries whose version is set at
    # link time, the Go variable that holds it (`<package>.<name>`).
    recipes: Path = MODULES_DIR
    packages: tuple[str, ...] = ()
    version_variable: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.version}"

    @property
    def module_dir(self) -> Path:
        return self.recipes / f"{self.kind}-{self.version}"

    def has_recipe(self) -> bool:
        return (self.module_dir / "go.mod").is_file() and (self.module_dir / "go.sum").is_file()

    def expected_version_text(self, binary: str) -> str:
        """What `<binary> --version` must print for a build of this version."""
        if self.kind == "etcd":
            return f"etcd Version: {self.version.removeprefix('v')}"
        if self.kind == "kwok":
            return self.version
        if self.version_variable is not None:
            return f"version {self.version.removeprefix('v')}"
        return f"Kubernetes {self.version}"


def kubernetes(minor: str) -> Component:
    return Component("kubernetes", KUBERNETES_PATCHES[minor], KUBERNETES_BINARIES)


ETCD: Final = Component("etcd", ETCD_VERSION, ("etcd",))
KWOK: Final = Component("kwok", KWOK_VERSION, KWOK_BINARIES)


def minors_with_recipe() -> list[str]:
    """The minors whose consumer module ships with Kupe, oldest first."""
    return sorted(
        (minor for minor in KUBERNETES_PATCHES if kubernetes(minor).has_recipe()), key=minor_key
    )


class BinaryCache:
    """Paths into the cache, and the cheap checks the provider makes before using them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, component: Component) -> Path:
        return self.root / component.kind / component.version

    def binary(self, component: Component, name: str) -> Path:
        return self.directory(component) / name

    def kube_dir(self, minor: str) -> Path:
        return self.directory(kubernetes(minor))

    @property
    def etcd(self) -> Path:
        return self.binary(ETCD, "etcd")

    @property
    def kwok(self) -> Path:
        return self.binary(KWOK, "kwok")

    @property
    def kwokctl(self) -> Path:
        return self.binary(KWOK, "kwokctl")

    def is_verified(self, component: Component) -> bool:
        """True when a marker says these binaries were verified and none changed since."""
        marker = self.directory(component) / MARKER
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            return False
        return bool(recorded.get("version") == component.version) and recorded.get(
            "binaries"
        ) == self._fingerprint(component)

    def verify(self, component: Component) -> str | None:
        """Run every binary's `--version`; None when all report `component.version`, else why
        not. Writes the marker on success."""
        for name in component.binaries:
            path = self.binary(component, name)
            if not path.is_file():
                return f"{path} is missing"
            try:
                result = subprocess.run(  # noqa: S603 - a binary of our own cache
                    [str(path), "--version"], capture_output=True, text=True, timeout=60
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"{path} --version failed: {exc}"
            printed = (result.stdout + result.stderr).strip()
            if component.expected_version_text(name) not in printed:
                first = printed.splitlines()[0] if printed else "nothing"
                return f"{path} reports {first!r}, expected {component.version}"
        marker = self.directory(component) / MARKER
        marker.write_text(
            json.dumps({"version": component.version, "binaries": self._fingerprint(component)})
        )
        os.chmod(marker, 0o600)
        return None

    def installed_minors(self) -> list[str]:
        """The minors whose Kubernetes binaries, plus etcd and kwok, are verified; oldest first."""
        if not (self.is_verified(ETCD) and self.is_verified(KWOK)):
            return []
        return sorted(
            (minor for minor in KUBERNETES_PATCHES if self.is_verified(kubernetes(minor))),
            key=minor_key,
        )

    def _fingerprint(self, component: Component) -> dict[str, list[int]] | None:
        """Size and modification time of each binary (None if one is missing): a rebuilt or
        replaced binary invalidates the marker without being run again."""
        found: dict[str, list[int]] = {}
        for name in component.binaries:
            try:
                stat = self.binary(component, name).stat()
            except OSError:
                return None
            found[name] = [stat.st_size, stat.st_mtime_ns]
        return found
