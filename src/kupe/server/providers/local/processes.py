"""The processes of a local cluster, read from /proc.

kwokctl tracks each component by a pid file and calls a pid alive when signal 0 reaches it. That
is wrong twice over: a zombie (killed, never reaped: it happens where PID 1 does not reap
orphans) still takes signals, and after a reboot the pid may belong to an unrelated process.
So the provider judges pids itself: alive means not a zombie and its command line names the
cluster's directory (every component's flags do).
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# The pid files kwokctl's binary runtime writes, one per component it starts.
COMPONENTS: Final = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok-controller",
)
_PROC: Final = Path("/proc")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessInfo:
    """One live process: its pid, resident memory and CPU time used so far."""

    pid: int
    name: str
    rss_bytes: int
    cpu_seconds: float

    def proportional_bytes(self) -> int:
        """PSS: resident memory with pages shared between processes (the binaries' code, run
        by every cluster of a version) divided among them; 0 if the process is gone."""
        try:
            text = (_PROC / str(self.pid) / "smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return 0
        for line in text.splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
        return 0


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3, the state, first)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text[text.rfind(")") + 2 :].split()


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def belongs_to(pid: int, cluster_dir: Path) -> bool:
    """Whether `pid` is a live (non-zombie) process of the cluster in `cluster_dir`."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return f"{cluster_dir}/" in _cmdline(pid)


def component_pid(cluster_dir: Path, component: str) -> int | None:
    """The live pid of one component, per kwokctl's pid file and our own check."""
    try:
        pid = int((cluster_dir / "pids" / f"{component}.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if belongs_to(pid, cluster_dir) else None


def dead_components(cluster_dir: Path) -> list[str]:
    return [name for name in COMPONENTS if component_pid(cluster_dir, name) is None]


def clear_stale_pid_files(cluster_dir: Path) -> None:
    """Remove pid files whose process is gone, a zombie or someone else's, so that kwokctl
    starts those components again instead of believing them running."""
    for path in (cluster_dir / "pids").glob("*.pid"):
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            pid = -1
        if pid <= 0 or not belongs_to(pid, cluster_dir):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def cluster_processes(cluster_dir: Path) -> list[ProcessInfo]:
    """Every live process whose command line names the cluster's directory."""
    found: list[ProcessInfo] = []
    marker = f"{cluster_dir}/"
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        command = _cmdline(pid)
        if marker not in command:
            continue
        fields = _stat_fields(pid)
        if fields is None or fields[0] in ("Z", "X"):
            continue
        # stat fields after the name: utime is the 14th field overall, stime the 15th,
        # rss (pages) the 24th; the list here starts at the 3rd.
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        found.append(
            ProcessInfo(
                pid=pid,
                name=Path(command.split(" ", 1)[0]).name,
                rss_bytes=int(fields[21]) * _PAGE_SIZE,
                cpu_seconds=cpu,
            )
        )
    return found


def kill_all(cluster_dir: Path) -> list[int]:
    """SIGKILL every live process of the cluster; the pids signalled."""
    killed: list[int] = []
    for process in cluster_processes(cluster_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
            killed.append(process.pid)
    return killed
