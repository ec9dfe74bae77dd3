"""The rate limiter's arithmetic and its memory bound, without an app."""

from __future__ import annotations

from kupe.core.clock import FakeClock
from kupe.server.services.ratelimit import RateLimiter, credential_key


def _limiter(clock: FakeClock, **overrides: float) -> RateLimiter:
    values: dict[str, float] = {
        "rps": 2,
        "burst": 4,
        "auth_failure_allowance": 2,
        "auth_failure_window": 60,
        "auth_backoff_max": 16,
        **overrides,
    }
    return RateLimiter(
        rps=values["rps"],
        burst=int(values["burst"]),
        auth_failure_allowance=int(values["auth_failure_allowance"]),
        auth_failure_window=values["auth_failure_window"],
        auth_backoff_max=values["auth_backoff_max"],
        clock=clock,
        max_tracked=int(values.get("max_tracked", 100)),
    )


def test_bucket_refills_at_the_rate_and_never_above_the_burst() -> None:
    clock = FakeClock()
    limiter = _limiter(clock)
    assert all(limiter.check("ip", None, authenticating=False) is None for _ in range(4))
    refusal = limiter.check("ip", None, authenticating=False)
    assert refusal is not None
    assert refusal.retry_after == 1  # half a second, rounded up
    clock.advance(3600)
    allowed = [limiter.check("ip", None, authenticating=False) is None for _ in range(5)]
    assert allowed == [True, True, True, True, False]


def test_tracked_clients_are_bounded() -> None:
    limiter = _limiter(FakeClock(), max_tracked=10)
    for index in range(1000):
        limiter.check(f"10.0.{index // 256}.{index % 256}", f"cred-{index}", authenticating=True)
        limiter.record(f"10.0.{index // 256}.{index % 256}", f"cred-{index}", 401)
    assert len(limiter._ips) == 10
    assert len(limiter._credentials) == 10
    assert len(limiter._failures) == 10
    assert len(limiter._good) <= 10


def test_backoff_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    limiter = _limiter(clock, rps=1000, burst=1000)
    waits = []
    for _ in range(9):
        limiter.record("ip", None, 401)
        refusal = limiter.check("ip", None, authenticating=True)
        waits.append(refusal.retry_after if refusal else 0)
        if refusal:
            clock.advance(refusal.retry_after)
    assert waits == [0, 0, 1, 2, 4, 8, 16, 16, 16]
    # Routes that need no credentials are not held back.
    limiter.record("ip", None, 401)
    assert limiter.check("ip", None, authenticating=False) is None


def test_credential_key_is_a_digest() -> None:
    key = "Bearer kupe_abcdefgh_" + "x" * 43
    assert credential_key(key) == credential_key(key + " ")
    assert "kupe_" not in credential_key(key)
    assert len(credential_key(key)) == 32
