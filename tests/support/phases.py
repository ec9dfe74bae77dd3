"""Phases as a poller sees them: any may be missed, none may come out of order."""

from __future__ import annotations

from collections.abc import Sequence


def assert_seen_along(seen: Sequence[str], path: Sequence[str]) -> None:
    """Each phase in `seen` (consecutive repeats folded) comes later on `path` than the one
    before it, and the last is the end of `path`. A poll may miss a short phase, so `seen` may
    skip any of `path` but its end; it may never go back, or show a phase not on `path`."""
    folded = [phase for i, phase in enumerate(seen) if i == 0 or seen[i - 1] != phase]
    assert folded, "no phase was seen"
    assert folded[-1] == path[-1], f"ended at {folded[-1]}, not {path[-1]}: {folded}"
    position = 0
    for phase in folded:
        try:
            position = path.index(phase, position)
        except ValueError:
            raise AssertionError(f"{phase} out of order on {list(path)}: {folded}") from None
