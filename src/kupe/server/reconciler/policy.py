"""When to look at an item again: backoff after transient errors, jittered periodic resyncs."""

from __future__ import annotations

import random

from kupe.server.settings import ReconcilerSettings


class RetryPolicy:
    """Delays shared by every kind, from the reconciler's settings."""

    def __init__(self, settings: ReconcilerSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.poll_seconds = settings.poll_seconds
        self.max_transient_failures = settings.max_transient_failures
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def backoff(self, failures: int) -> float:
        """Exponential with jitter after `failures` consecutive transient failures."""
        base = self.settings.retry_base_seconds * 2 ** min(failures - 1, 30)
        return float(min(self.settings.retry_max_seconds, base) * self._rng.uniform(0.5, 1.0))

    def resync_delay(self) -> float:
        """The next periodic look at a settled item, jittered so items spread out."""
        return self.jitter(self.settings.resync_seconds)

    def jitter(self, seconds: float) -> float:
        """`seconds`, shortened by up to a fifth at random, so items spread out."""
        return float(seconds * self._rng.uniform(0.8, 1.0))
