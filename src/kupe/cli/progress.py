"""Live progress while a cluster moves through its phases (create, update, delete --wait).

On a terminal: one updating line with a spinner, the current phase, the elapsed time and the
phases passed through. Elsewhere (CI logs, pipes): one plain line per phase change.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from kupe.cli.output import PHASE_STYLES, stderr
from kupe.schemas.cluster import Cluster


def phase_label(cluster: Cluster) -> str:
    """The phase, saying so when a Running cluster is still applying a change."""
    phase = cluster.status.phase
    if phase == "Running" and cluster.status.observed_generation < cluster.generation:
        return "Running, applying change"
    return phase


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


class PhaseProgress:
    """Report each phase a cluster passes through until `finish()` is called."""

    def __init__(
        self,
        name: str,
        *,
        tty: bool | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.monotonic = monotonic
        self.started = monotonic()
        self.phases: list[str] = []
        self.outcome: str | None = None
        self.ok = True
        self.ended: float | None = None
        self._live: Live | None = None

    @property
    def elapsed(self) -> str:
        end = self.ended if self.ended is not None else self.monotonic()
        return elapsed_text(end - self.started)

    def __enter__(self) -> PhaseProgress:
        if self.tty:
            self._live = Live(self, console=stderr(), refresh_per_second=8, transient=False)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.outcome is None and exc is not None:
            self.finish(self.phases[-1] if self.phases else "unknown", ok=False)
        if self._live is not None:
            self._live.stop()

    def __call__(self, cluster: Cluster) -> None:
        """Record what the cluster looks like now (the SDK's wait() on_change hook)."""
        label = phase_label(cluster)
        if self.phases and self.phases[-1] == label:
            return
        self.phases.append(label)
        if not self.tty:
            typer.echo(f"{self.name}: {label} ({self.elapsed})", err=True)

    def finish(self, outcome: str, *, ok: bool = True) -> None:
        """The wait is over: `outcome` is the final phase (or `deleted`)."""
        self.outcome = outcome
        self.ok = ok
        self.ended = self.monotonic()
        if self.phases and self.phases[-1] != outcome:
            self.phases.append(outcome)
            if not self.tty:
                typer.echo(f"{self.name}: {outcome} ({self.elapsed})", err=True)
        elif not self.phases:
            self.phases.append(outcome)

    def __rich__(self) -> RenderableType:
        trail = Text(" → ").join(Text(p, style=PHASE_STYLES.get(p, "")) for p in self.phases)
        current = self.phases[-1] if self.phases else "…"
        line = Table.grid(padding=(0, 1))
        if self.outcome is None:
            line.add_row(
                Spinner("dots", style="cyan"),
                Text(self.name, style="bold"),
                Text(current, style=PHASE_STYLES.get(current, "")),
                Text(self.elapsed, style="dim"),
            )
        else:
            mark = Text("✓", style="green") if self.ok else Text("✗", style="bold red")
            line.add_row(
                mark,
                Text(self.name, style="bold"),
                Text(self.outcome, style=PHASE_STYLES.get(self.outcome, "")),
                Text(f"after {self.elapsed}", style="dim"),
            )
        return Group(line, Text("  ") + trail) if len(self.phases) > 1 else line
