"""`kupe local install`: build the local provider's binaries from the Go module proxy.

Each component is built from a consumer module of our own (go.mod + go.sum shipped in
`modules/`), with the ordinary `go` client: `CGO_ENABLED=0 go build -p 2 -trimpath`, version
ldflags for Kubernetes and a fixed build date (the module's release time), so a rebuild gives
the same binaries. Binaries land in the cache only once built and verified; a second run finds
the marker and does nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from kupe.server.providers.local.binaries import (
    ETCD,
    KUBERNETES_PATCHES,
    KWOK,
    BinaryCache,
    Component,
    kubernetes,
    minor_key,
    minors_with_recipe,
)

_TAIL_LINES: Final = 12
_PACKAGES: Final[dict[str, tuple[str, ...]]] = {
    "etcd": ("go.etcd.io/etcd/server/v3",),
    "kwok": ("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
}
_MAIN_MODULES: Final = {"kubernetes": "k8s.io/kubernetes", "etcd": "go.etcd.io/etcd/server/v3"}


class InstallError(Exception):
    """The binaries could not be installed; the message is one line for the operator."""


class GoNotFound(InstallError):
    """The `go` command is not on PATH."""


class UnknownVersion(InstallError):
    """A requested minor has no build recipe."""


class BuildFailed(InstallError):
    """`go` failed; the message ends with the last lines it printed."""


class InstallReporter(Protocol):
    """Receives progress while components build (the CLI renders it with Rich)."""

    def started(self, label: str, total: int | None) -> None: ...

    def advanced(self, label: str, done: int, detail: str) -> None: ...

    def finished(self, label: str, outcome: str) -> None: ...


class SilentReporter:
    """Reports nothing."""

    def started(self, label: str, total: int | None) -> None:
        return None

    def advanced(self, label: str, done: int, detail: str) -> None:
        return None

    def finished(self, label: str, outcome: str) -> None:
        return None


@dataclass(frozen=True)
class InstallResult:
    """What happened to one component: "built", "installed" (found verified) or "adopted"
    (binaries were there without a marker and reported the right version)."""

    label: str
    outcome: str
    seconds: float


def parse_versions(text: str | Sequence[str]) -> list[str]:
    """Minors from "1.36,1.37" (or a list), de-duplicated, oldest first."""
    items = text.split(",") if isinstance(text, str) else list(text)
    minors = {item.strip().removeprefix("v") for item in items if item.strip()}
    return sorted(minors, key=lambda m: minor_key(m) if m.count(".") == 1 else 1_000)


class Installer:
    """Builds components into a `BinaryCache` with the `go` found on PATH."""

    def __init__(
        self,
        cache: BinaryCache,
        reporter: InstallReporter | None = None,
        go: str = "go",
        *,
        purpose: str = "kupe local install builds Kubernetes",
    ) -> None:
        self.cache = cache
        self.reporter = reporter or SilentReporter()
        self.go = go
        # What needs go, for the one-line error when it is missing.
        self.purpose = purpose

    def components(self, minors: Sequence[str]) -> list[Component]:
        """The components `minors` need; UnknownVersion when one has no recipe."""
        available = minors_with_recipe()
        for minor in minors:
            if minor not in KUBERNETES_PATCHES or minor not in available:
                raise UnknownVersion(
                    f"no build recipe for Kubernetes {minor}; available: "
                    + (", ".join(available) or "none")
                )
        ordered = sorted(set(minors), key=minor_key)
        return [ETCD, KWOK, *(kubernetes(minor) for minor in ordered)]

    def install(self, minors: Sequence[str]) -> list[InstallResult]:
        """Make sure every component of `minors` is in the cache and verified."""
        return self.install_components(self.components(minors))

    def install_components(self, components: Sequence[Component]) -> list[InstallResult]:
        """Make sure each of `components` is in the cache and verified (built if not)."""
        self.cache.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.cache.root, 0o700)
        results: list[InstallResult] = []
        go: str | None = None
        for component in components:
            began = time.monotonic()
            if self.cache.is_verified(component):
                outcome = "installed"
            elif self._binaries_present(component) and self.cache.verify(component) is None:
                outcome = "adopted"
            else:
                go = go or self._find_go()
                self._build(go, component)
                problem = self.cache.verify(component)
                if problem is not None:
                    raise BuildFailed(f"{component.label} built but does not verify: {problem}")
                outcome = "built"
            self.reporter.finished(component.label, outcome)
            results.append(InstallResult(component.label, outcome, time.monotonic() - began))
        return results

    # -- building ------------------------------------------------------------------------

    def _find_go(self) -> str:
        found = shutil.which(self.go)
        if found is None:
            raise GoNotFound(
                f"`{self.go}` was not found on PATH: {self.purpose} from source and needs "
                "the Go toolchain (1.26 or newer)"
            )
        return found

    def _binaries_present(self, component: Component) -> bool:
        return all(self.cache.binary(component, name).is_file() for name in component.binaries)

    def _build(self, go: str, component: Component) -> None:
        label = component.label
        build_dir = self.cache.root / "build" / f"{component.kind}-{component.version}"
        build_dir.mkdir(parents=True, exist_ok=True)
        for name in ("go.mod", "go.sum"):
            shutil.copyfile(component.module_dir / name, build_dir / name)
        env = _go_env()
        packages = _packages(component)
        self.reporter.started(label, None)
        self.reporter.advanced(label, 0, "resolving packages")
        listed = self._run(go, ["list", "-deps", *packages], build_dir, env, label, None)
        total = len(listed)
        self.reporter.started(label, total)
        # go build -v names each package it compiles; packages from go's build cache and the
        # final link pass silently.
        self.reporter.advanced(label, 0, "compiling, then linking")
        staging = self.cache.directory(component).with_name(f".{component.version}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True, mode=0o700)
        # etcd's main package is ".../server/v3": name its binary explicitly.
        output = str(staging / "etcd") if component.kind == "etcd" else f"{staging}/"
        ldflags = "-s -w" + _version_ldflags(go, component, build_dir, env)
        self._run(
            go,
            ["build", "-v", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", output, *packages],
            build_dir,
            env,
            label,
            total,
        )
        final = self.cache.directory(component)
        final.mkdir(parents=True, exist_ok=True)
        for name in component.binaries:
            os.replace(staging / name, final / name)
        shutil.rmtree(staging, ignore_errors=True)

    def _run(
        self,
        go: str,
        args: list[str],
        cwd: Path,
        env: dict[str, str],
        label: str,
        total: int | None,
    ) -> list[str]:
        """Run go, reporting each line it prints; BuildFailed with the last lines on error."""
        lines: list[str] = []
        tail: deque[str] = deque(maxlen=_TAIL_LINES)
        process = subprocess.Popen(  # noqa: S603 - the go toolchain, fixed arguments
            [go, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        with process:
            for raw in process.stdout:
                line = raw.rstrip()
                lines.append(line)
                tail.append(line)
                if total is not None:
                    self.reporter.advanced(label, len(lines), line)
        if process.returncode != 0:
            last = " | ".join(line for line in tail if line) or f"exit status {process.returncode}"
            raise BuildFailed(f"building {label} failed (go {args[0]}): {last}")
        return lines


def _packages(component: Component) -> tuple[str, ...]:
    if component.packages:
        return component.packages
    if component.kind == "kubernetes":
        return tuple(f"k8s.io/kubernetes/cmd/{name}" for name in component.binaries)
    return _PACKAGES[component.kind]


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Pure Go binaries; a module cache others can clean up; nothing of the user's GOFLAGS
    # (e.g. -mod=vendor) that would change what is built.
    env.update(CGO_ENABLED="0", GOFLAGS="-modcacherw")
    return env


def _version_ldflags(go: str, component: Component, cwd: Path, env: dict[str, str]) -> str:
    """-X flags that make Kubernetes binaries report their version; empty for the others,
    whose version is a constant of their source."""
    if component.version_variable is not None:
        return f" -X {component.version_variable}={component.version.removeprefix('v')}"
    if component.kind != "kubernetes":
        return ""
    build_date = _release_time(go, _MAIN_MODULES["kubernetes"], component.version, cwd, env)
    minor = component.version.split(".")[1]
    flags = ""
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (
            ("gitVersion", component.version),
            ("gitMajor", "1"),
            ("gitMinor", minor),
            ("gitTreeState", "clean"),
            ("buildDate", build_date),
        ):
            flags += f" -X {package}.{key}={value}"
    return flags


def _release_time(go: str, module: str, version: str, cwd: Path, env: dict[str, str]) -> str:
    """The module version's publication time from the proxy (`go mod download -json`), a
    fixed build date that keeps builds reproducible."""
    result = subprocess.run(  # noqa: S603 - the go toolchain
        [go, "mod", "download", "-json", f"{module}@{version}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BuildFailed(f"go mod download {module}@{version} failed: {result.stderr.strip()}")
    info_path = json.loads(result.stdout)["Info"]
    released: str = json.loads(Path(info_path).read_text())["Time"]
    return released.replace("+00:00", "Z")
