"""Driving kwokctl's binary runtime: the configuration of one cluster, and the commands that
create, start, stop and delete it, run as asyncio subprocesses.

kwokctl reads `KWOK_*` variables as overrides of its configuration, so they are removed from
its environment (all but `KWOK_WORKDIR`, set to ours); `--kubeconfig=` keeps it from editing
the user's ~/.kube/config; `kubectl` (which it runs to see a cluster serve) comes first on PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import yaml

from kupe.server.providers.local.binaries import KUBERNETES_BINARIES, KUBERNETES_PATCHES
from kupe.server.providers.local.state import Ports

_TAIL_CHARS: Final = 600
_KWOK_CONFIG: Final = "kwok.yaml"


class KwokctlError(Exception):
    """kwokctl failed or timed out; the message ends with what it printed last."""


@dataclass(frozen=True)
class Binaries:
    """The binaries one cluster runs."""

    kube_dir: Path
    etcd: Path
    kwok: Path
    kubectl: Path | None


@dataclass(frozen=True)
class ApiServerTuning:
    """Flags and environment of the API server and its neighbours that bound memory."""

    token_webhook_config: Path
    token_cache_ttl_seconds: int
    memory_limit_mb: int | None


def configuration(
    minor: str, ports: Ports, binaries: Binaries, cache_dir: Path, tuning: ApiServerTuning
) -> str:
    """The KwokctlConfiguration (YAML) of one cluster."""
    options: dict[str, Any] = {
        "runtime": "binary",
        # kwokctl binds every component to 0.0.0.0 unless told otherwise.
        "bindAddress": "127.0.0.1",
        "kubeApiserverCertSANs": ["127.0.0.1", "localhost"],
        "kubeVersion": KUBERNETES_PATCHES[minor],
        "kubeBinaryPrefix": str(binaries.kube_dir),
        "kubeApiserverBinary": str(binaries.kube_dir / "kube-apiserver"),
        "kubeControllerManagerBinary": str(binaries.kube_dir / "kube-controller-manager"),
        "kubeSchedulerBinary": str(binaries.kube_dir / "kube-scheduler"),
        "etcdBinary": str(binaries.etcd),
        "kwokControllerBinary": str(binaries.kwok),
        "securePort": True,
        "kubeAuthorization": True,
        "kubeAdmission": True,
        "quietPull": True,
        "cacheDir": str(cache_dir),
        # Every port is ours to hand out: kwokctl's own choice collides between concurrent
        # creates, and it does not know the ports of clusters that are stopped.
        "kubeApiserverPort": ports.apiserver,
        "etcdPort": ports.etcd,
        "etcdPeerPort": ports.etcd_peer,
        "kwokControllerPort": ports.kwok_controller,
        "kubeControllerManagerPort": ports.controller_manager,
        "kubeSchedulerPort": ports.scheduler,
    }
    if binaries.kubectl is not None:
        options["kubectlBinary"] = str(binaries.kubectl)
    apiserver_args = [
        {
            "key": "authentication-token-webhook-config-file",
            "value": str(tuning.token_webhook_config),
        },
        {
            "key": "authentication-token-webhook-cache-ttl",
            "value": f"{tuning.token_cache_ttl_seconds}s",
        },
        {"key": "authentication-token-webhook-version", "value": "v1"},
    ]
    patches: list[dict[str, Any]] = [{"name": "kube-apiserver", "extraArgs": apiserver_args}]
    # One replica each: leader election would only renew a lease every two seconds, at the
    # cost of a write through the API server and etcd (about a quarter of an idle cluster's CPU).
    patches += [
        {"name": name, "extraArgs": [{"key": "leader-elect", "value": "false"}]}
        for name in ("kube-controller-manager", "kube-scheduler")
    ]
    if tuning.memory_limit_mb is not None:
        patches = _memory_patches(patches, tuning.memory_limit_mb)
    document = {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": options,
        "componentsPatches": patches,
    }
    return yaml.safe_dump(document, sort_keys=False)


def _memory_patches(patches: list[dict[str, Any]], apiserver_mb: int) -> list[dict[str, Any]]:
    """A soft memory limit for every Go component (the API server's as set, the others a
    share of it): the Go GC then works harder instead of letting the heap double."""
    shares = {
        "kube-apiserver": 1.0,
        "kube-controller-manager": 0.4,
        "kube-scheduler": 0.25,
        "kwok-controller": 0.2,
        "etcd": 0.2,
    }
    by_name = {patch["name"]: patch for patch in patches}
    for name, share in shares.items():
        patch = by_name.setdefault(name, {"name": name})
        limit = max(16, int(apiserver_mb * share))
        patch["extraEnvs"] = [{"name": "GOMEMLIMIT", "value": f"{limit}MiB"}]
    return list(by_name.values())


def repoint_binaries(cluster_dir: Path, kube_dir: Path, minor: str) -> None:
    """Point the cluster's Kubernetes binaries at another version and record its version in
    kwokctl's configuration: what an in-place upgrade changes while the cluster is stopped."""
    bin_dir = cluster_dir / "bin"
    for name in KUBERNETES_BINARIES:
        link = bin_dir / name
        temporary = bin_dir / f".{name}.new"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(kube_dir / name)
        os.replace(temporary, link)
    path = cluster_dir / _KWOK_CONFIG
    documents = list(yaml.safe_load_all(path.read_text()))
    patch = KUBERNETES_PATCHES[minor]
    for document in documents:
        if not isinstance(document, dict) or document.get("kind") != "KwokctlConfiguration":
            continue
        document.setdefault("options", {})["kubeVersion"] = patch
        for component in document.get("components") or []:
            if component.get("name") in KUBERNETES_BINARIES:
                component["version"] = patch.removeprefix("v")
    text = yaml.safe_dump_all(documents, sort_keys=False)
    temporary_config = path.with_name(f".{_KWOK_CONFIG}.new")
    temporary_config.write_text(text)
    os.chmod(temporary_config, 0o600)
    os.replace(temporary_config, path)


class Kwokctl:
    """Runs kwokctl against one workdir."""

    def __init__(self, binary: Path, workdir: Path, kubectl: Path | None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.kubectl = kubectl

    def environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KWOK_")}
        env["KWOK_WORKDIR"] = str(self.workdir)
        if self.kubectl is not None:
            env["PATH"] = f"{self.kubectl.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    async def create(self, name: str, config: Path, limit: float) -> None:
        await self._run(
            "create",
            ["--name", name, "--config", str(config), "create", "cluster", "--kubeconfig="],
            limit,
        )

    async def start(self, name: str, limit: float) -> None:
        await self._run("start", ["--name", name, "start", "cluster"], limit)

    async def stop(self, name: str, limit: float) -> None:
        await self._run("stop", ["--name", name, "stop", "cluster"], limit)

    async def delete(self, name: str, limit: float) -> None:
        await self._run("delete", ["--name", name, "delete", "cluster", "--kubeconfig="], limit)

    async def _run(self, verb: str, args: list[str], limit: float) -> None:
        # Output goes to a file, not a pipe: kwokctl's components would inherit a pipe's other
        # end (an event loop such as uvloop hands children descriptors without close-on-exec,
        # and Go passes them on), so it would never reach end-of-file while they run.
        with tempfile.TemporaryFile(dir=self.workdir, prefix=".kwokctl-") as output:
            process = await asyncio.create_subprocess_exec(
                str(self.binary),
                *args,
                env=self.environment(),
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
            try:
                await asyncio.wait_for(process.wait(), limit)
            except BaseException as exc:
                # Timed out or cancelled: stop kwokctl itself (the components it forked run
                # in sessions of their own; the next call finds and judges them).
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(process.wait())
                if isinstance(exc, TimeoutError):
                    raise KwokctlError(
                        f"kwokctl {verb} cluster timed out after {limit:g}s: {_tail(output)}"
                    ) from None
                raise
            if process.returncode != 0:
                raise KwokctlError(f"kwokctl {verb} cluster failed: {_tail(output)}")


def _tail(output: IO[bytes]) -> str:
    """The end of what kwokctl printed (it prints no secrets: tokens live in files)."""
    output.seek(0)
    return output.read().decode(errors="replace").strip()[-_TAIL_CHARS:]
