"""A real `kupe serve` on a loopback port, in a subprocess, for end-to-end tests of the CLI and
the sync SDK: fast simulated provider, its own data dir, the bootstrap key of tenant `default`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support.server_process import clean_environ as server_environ
from tests.support.server_process import process_group

KUPE_BIN = Path(sys.executable).parent / "kupe"
KUBECTL_BIN = Path(sys.executable).parent / "kubectl"
FAST = {
    "KUPE_SIM_PROVISION_SECONDS": "1",
    "KUPE_SIM_UPGRADE_SECONDS": "1",
    "KUPE_SIM_DELETE_SECONDS": "1",
    "KUPE_RECONCILE_POLL_SECONDS": "0.2",
}


def clean_environ(**extra: str | None) -> dict[str, str]:
    """os.environ without any KUPE_* or kubeconfig setting of the person running the tests;
    `None` removes a variable."""
    env = {k: v for k, v in server_environ({}).items() if k != "KUBECONFIG"}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclass(frozen=True)
class LiveKupe:
    """A running server and what a client needs to reach it."""

    url: str
    key: str
    tenant: str
    data_dir: Path
    log_file: Path

    def client_env(self, home: Path, **extra: str | None) -> dict[str, str]:
        """Environment for a client process: this server, and a private config/kube dir."""
        return clean_environ(
            KUPE_API_URL=self.url,
            KUPE_API_KEY=self.key,
            KUPE_TENANT=self.tenant,
            XDG_CONFIG_HOME=str(home / "xdg"),
            HOME=str(home),
            PATH=f"{KUPE_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            **extra,
        )

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def live_kupe(workdir: Path, settings: Mapping[str, str] | None = None) -> Iterator[LiveKupe]:
    """Start `kupe serve`, wait until it is ready, yield it, and always stop it."""
    with process_group(workdir, {**FAST, **dict(settings or {})}) as group:
        server = group.serve().wait_ready()
        yield LiveKupe(server.url, group.api_key(), "default", group.data_dir, server.log_file)
        server.stop()
