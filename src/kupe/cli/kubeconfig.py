"""Writing kubeconfig files: a fresh file, or merged into one the user already has."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import yaml

SECTIONS = ("clusters", "users", "contexts")


class KubeconfigFileError(Exception):
    """The existing kubeconfig cannot be read or merged."""


def default_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where kubectl looks first: the first entry of KUBECONFIG, else ~/.kube/config."""
    env = os.environ if environ is None else environ
    entries = [p for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    return Path(entries[0]).expanduser() if entries else Path.home() / ".kube" / "config"


def merge(existing: Mapping[str, object], new: Mapping[str, object]) -> dict[str, object]:
    """`existing` with `new`'s clusters, users and contexts added or replaced by name."""
    merged: dict[str, object] = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in SECTIONS:
        current = existing.get(section) or []
        additions = new.get(section) or []
        if not isinstance(current, list) or not isinstance(additions, list):
            raise KubeconfigFileError(f"`{section}` must be a list")
        replaced = {entry.get("name") for entry in additions if isinstance(entry, dict)}
        kept = [e for e in current if not (isinstance(e, dict) and e.get("name") in replaced)]
        merged[section] = [*kept, *additions]
    if "current-context" in new:
        merged["current-context"] = new["current-context"]
    return merged


def read(path: Path) -> dict[str, object]:
    """An existing kubeconfig as a mapping; a missing or empty file is an empty one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise KubeconfigFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigFileError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeconfigFileError(f"{path} is not a kubeconfig (not a mapping)")
    return data


def write(path: Path, document: Mapping[str, object]) -> None:
    """Write atomically with mode 0600, as kubectl does: kubeconfigs often hold credentials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(dict(document), out, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
