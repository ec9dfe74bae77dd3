"""Writing kubeconfig files: a fresh file, or merged into one the user already has."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
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


def kupe_executable() -> str:
    """The absolute path of the running kupe, so kubectl finds it outside this venv too."""
    launched = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if launched is not None and launched.name in ("kupe", "kupe.exe") and launched.exists():
        return str(launched.resolve())
    beside = Path(sys.executable).parent / "kupe"
    found = shutil.which("kupe") or (str(beside) if beside.exists() else None)
    return str(Path(found).resolve()) if found else "kupe"


def use_executable(document: Mapping[str, object], command: str) -> None:
    """Point every user's exec plugin that runs a bare `kupe` at `command`."""
    users = document.get("users")
    for user in users if isinstance(users, list) else []:
        exec_ = user.get("user", {}).get("exec") if isinstance(user, dict) else None
        if isinstance(exec_, dict) and exec_.get("command") == "kupe":
            exec_["command"] = command


def conflicts(existing: Mapping[str, object], new: Mapping[str, object]) -> list[str]:
    """The entries of `new` that would replace a different entry of the same name."""
    found: list[str] = []
    for section in SECTIONS:
        current, additions = existing.get(section), new.get(section)
        if not isinstance(current, list) or not isinstance(additions, list):
            continue
        for entry in additions:
            if not isinstance(entry, dict):
                continue
            same = [e for e in current if isinstance(e, dict) and e.get("name") == entry["name"]]
            if same and same[0] != entry:
                found.append(f"{section[:-1]} {entry['name']}")
    return found


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


def merge_into(target: Path, document: dict[str, object], *, force: bool) -> dict[str, object]:
    """`document` merged into the kubeconfig at `target`; without `force`, refuses to replace
    an entry that differs or a file that is not a kubeconfig."""
    try:
        existing = read(target)
    except KubeconfigFileError:
        if not force:
            raise
        return document
    replaced = conflicts(existing, document)
    if replaced and not force:
        raise KubeconfigFileError(
            f"{target} already has a different {', '.join(replaced)}; pass --force to replace it"
        )
    return merge(existing, document)


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
