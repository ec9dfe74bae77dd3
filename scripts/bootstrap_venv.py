"""Create .venv even where the interpreter ships without ensurepip (Debian's python3 without
python3-venv): fall back to a pip-less venv and install pip from its wheel on PyPI."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PYPI = "https://pypi.org/pypi/pip/json"


def main(target: str) -> None:
    path = Path(target)
    try:
        venv.EnvBuilder(with_pip=True).create(path)
        return
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"venv with pip failed ({exc}); installing pip from PyPI instead", file=sys.stderr)
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    with urllib.request.urlopen(PYPI, timeout=60) as response:
        release = json.load(response)
    wheel = next(f for f in release["urls"] if f["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / wheel["filename"]
        url = urllib.parse.urljoin(PYPI, wheel["url"])  # mirrors may answer relative URLs
        urllib.request.urlretrieve(url, local)
        python = path / "bin" / "python"
        # A pip wheel can run itself to install itself.
        subprocess.run([python, f"{local}/pip", "install", "--quiet", str(local)], check=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
