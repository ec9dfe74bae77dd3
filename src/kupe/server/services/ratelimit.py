"""Rate limits of one process: token buckets per client IP and per credential, and an
exponential back-off for client IPs that keep failing authentication.

State lives in memory, so with several replicas each enforces its own limits; the limits are
there to stop a runaway client or a credential guesser, not to meter use.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from kupe.core.clock import Clock

log = structlog.get_logger("kupe.ratelimit")
V = TypeVar("V")
MAX_TRACKED = 100_000


class _Lru(Generic[V]):
    """A bounded map that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class _Failures:
    count: int
    last: float
    blocked_until: float


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused and how long the client should wait (whole seconds)."""

    retry_after: int
    reason: str


def credential_key(authorization: str) -> str:
    """What a credential is tracked by: a digest, so no raw token is kept even in memory."""
    return hashlib.sha256(authorization.strip().encode()).hexdigest()[:32]


def _whole_seconds(wait: float) -> int:
    return max(1, int(-(-wait // 1)))


class RateLimiter:
    """Decides whether a request may proceed, and learns from authentication outcomes."""

    def __init__(
        self,
        *,
        rps: float,
        burst: int,
        auth_failure_allowance: int,
        auth_failure_window: float,
        auth_backoff_max: float,
        clock: Clock,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.rps = rps
        self.burst = float(burst)
        self.allowance = auth_failure_allowance
        self.window = auth_failure_window
        self.backoff_max = auth_backoff_max
        self.clock = clock
        self._ips: _Lru[_Bucket] = _Lru(max_tracked)
        self._credentials: _Lru[_Bucket] = _Lru(max_tracked)
        self._failures: _Lru[_Failures] = _Lru(max_tracked)
        # Credentials that authenticated recently: they pass an IP's back-off, so one broken
        # script behind a shared address does not lock out everyone else behind it.
        self._good: _Lru[float] = _Lru(max_tracked)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def check(self, ip: str, credential: str | None, *, authenticating: bool) -> Refusal | None:
        """None to let the request through, else a Refusal (answer 429)."""
        now = self._now()
        if authenticating:
            failures = self._failures.get(ip)
            if failures is not None and failures.blocked_until > now:
                good_at = self._good.get(credential) if credential else None
                if good_at is None or now - good_at > self.window:
                    return Refusal(
                        _whole_seconds(failures.blocked_until - now),
                        "Too many failed authentication attempts from this address",
                    )
        wait = self._take(self._ips, ip, now)
        if wait is None and credential is not None:
            wait = self._take(self._credentials, credential, now)
        if wait is not None:
            return Refusal(_whole_seconds(wait), "Too many requests")
        return None

    def record(self, ip: str, credential: str | None, status: int) -> None:
        """Learn from the answer to a tenant-scoped request: 401 is an authentication failure,
        success shows the credential is good."""
        now = self._now()
        if status == 401:
            if credential is not None:
                self._good.pop(credential)
            self._failed(ip, now)
        elif status < 400 and credential is not None:
            self._good.put(credential, now)

    def _failed(self, ip: str, now: float) -> None:
        failures = self._failures.get(ip)
        if failures is None or now - failures.last > self.window:
            failures = _Failures(0, now, 0.0)
        failures.count += 1
        failures.last = now
        over = failures.count - self.allowance
        if over > 0:
            delay = min(self.backoff_max, 2.0 ** min(over - 1, 32))
            failures.blocked_until = now + delay
            log.warning("auth.backoff", client_ip=ip, failures=failures.count, seconds=delay)
        self._failures.put(ip, failures)

    def _take(self, buckets: _Lru[_Bucket], key: str, now: float) -> float | None:
        """Take one token; None when there was one, else the seconds until there is."""
        bucket = buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rps)
            bucket.at = now
        buckets.put(key, bucket)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rps
