"""A real OpenID Provider on loopback for the console's OIDC sign-in tests: the oidc-provider
package from the npm registry, run by Node with `oidc/provider.mjs`, installed on first use
into build/ (so a fresh machine needs only node and npm, which this kind of machine has)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import http
from tests.support.server_process import wait_for

HERE = Path(__file__).parent / "oidc"
ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "build" / "oidc-provider"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str


def install() -> Path:
    """oidc-provider at the version package.json pins, in build/oidc-provider."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise AssertionError("the OIDC tests need node and npm (apt-get install -y nodejs npm)")
    INSTALL.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "provider.mjs"):
        shutil.copyfile(HERE / name, INSTALL / name)
    if not (INSTALL / "node_modules" / "oidc-provider" / "package.json").exists():
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"],
            cwd=INSTALL,
            check=True,
            timeout=300,
        )
    return Path(node)


@contextlib.contextmanager
def oidc_provider(port: int, redirect_uri: str, log_file: Path) -> Iterator[OidcProvider]:
    node = install()
    provider = OidcProvider(f"http://127.0.0.1:{port}", "kupe-console", os.urandom(24).hex())
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": provider.client_id,
        "OIDC_CLIENT_SECRET": provider.client_secret,
        "OIDC_REDIRECT_URI": redirect_uri,
    }
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(node), "provider.mjs"], cwd=INSTALL, env=env, stdout=log, stderr=log
        )
    try:

        def discovered() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the OIDC provider exited:\n{log_file.read_text()}")
            url = f"{provider.issuer}/.well-known/openid-configuration"
            return http.get(url, timeout=5).json()["issuer"] == provider.issuer

        wait_for("the OIDC provider", discovered, timeout=60)
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
