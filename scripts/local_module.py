"""Generate the consumer module (go.mod + go.sum) from which `kupe local install` builds one
component, into src/kupe/server/providers/local/modules/<kind>-<version>/.

    python scripts/local_module.py kubernetes v1.35.4
    python scripts/local_module.py etcd v3.6.16
    python scripts/local_module.py kwok v0.8.0

k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging modules with
./staging paths. The module made here requires k8s.io/kubernetes and replaces every staging
module k8s.io/<m> with the published k8s.io/<m> v0.<minor>.<patch>, copying k/k's `go` and
`godebug` lines; then `go get -tool` resolves the commands and writes go.sum. Only the go tool
talks to the module proxy; nothing is built. Adding a minor: run this, then add the patch to
KUBERNETES_PATCHES in binaries.py if it is not there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MODULES = Path(__file__).resolve().parents[1] / "src/kupe/server/providers/local/modules"
TOOLS = {
    "kubernetes": (
        "k8s.io/kubernetes/cmd/kube-apiserver",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-scheduler",
    ),
    "etcd": ("go.etcd.io/etcd/server/v3",),
    "kwok": ("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
}


def go(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-modcacherw")
    result = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"go {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def kubernetes_go_mod(version: str, cwd: Path) -> str:
    """A go.mod requiring k8s.io/kubernetes@version with its staging modules replaced."""
    info = json.loads(go(["mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd))
    upstream = Path(info["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", upstream, re.MULTILINE)
    if not staging:
        sys.exit(f"k8s.io/kubernetes@{version}: no staging replacements found in its go.mod")
    go_line = re.search(r"^go (\S+)$", upstream, re.MULTILINE)
    godebug = re.search(r"^godebug .*$", upstream, re.MULTILINE)
    _, minor, patch = version.removeprefix("v").split(".")
    published = f"v0.{minor}.{patch}"
    lines = [f"module kupe.local/kubernetes-{version}", ""]
    if go_line:
        lines += [f"go {go_line[1]}", ""]
    if godebug:
        lines += [godebug[0], ""]
    lines += [f"require k8s.io/kubernetes {version}", "", "replace ("]
    lines += [f"\t{module} => {module} {published}" for module in staging]
    lines += [")", ""]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in TOOLS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TOOLS)}}} vX.Y.Z")
    kind, version = sys.argv[1], sys.argv[2]
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        sys.exit(f"{version!r} is not a version like v1.36.3")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if kind == "kubernetes":
            (work / "go.mod").write_text(kubernetes_go_mod(version, work))
        else:
            go(["mod", "init", f"kupe.local/{kind}-{version}"], work)
        go(["get", "-tool", *(f"{tool}@{version}" for tool in TOOLS[kind])], work)
        target = MODULES / f"{kind}-{version}"
        target.mkdir(parents=True, exist_ok=True)
        for name in ("go.mod", "go.sum"):
            shutil.copyfile(work / name, target / name)
    print(f"wrote {target.relative_to(MODULES.parents[5])}/go.mod and go.sum")


if __name__ == "__main__":
    main()
