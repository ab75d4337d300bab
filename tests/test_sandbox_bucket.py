"""The sandbox's token bucket, on a clock the test moves (no sleeps)."""

from __future__ import annotations

import pytest

from batchplan.sandbox.bucket import TokenBucket, default_burst


class Clock:
    """Seconds, moved only by the test."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def admitted(bucket: TokenBucket, count: int) -> int:
    return sum(bucket.take() for _ in range(count))


def test_a_full_bucket_admits_its_burst_at_once_then_refuses() -> None:
    bucket = TokenBucket(100, 100, Clock())
    assert admitted(bucket, 150) == 100


@pytest.mark.parametrize("start", [0.0, 1000.0, 1_234_567.891])
def test_one_request_every_10_ms_at_100_a_second_is_always_admitted(start: float) -> None:
    # Steps of 0.01 s are not exact in binary floating point; the bucket must
    # not turn them into 0.9999... tokens and refuse every so often.
    clock = Clock(start)
    bucket = TokenBucket(100, 1, clock)
    results = []
    for step in range(10_000):
        clock.now = start + step * 0.01
        results.append(bucket.take())
    assert all(results)


def test_an_empty_bucket_at_100_a_second_admits_exactly_100_per_second() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 100, clock)
    assert admitted(bucket, 100) == 100
    # Ten seconds of a client far above the rate, every millisecond.
    total = 0
    for ms in range(1, 10_001):
        clock.now = 1000.0 + ms / 1000
        total += admitted(bucket, 5)
    assert total == 1000


def test_a_token_refills_after_one_interval_not_before() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 1, clock)
    assert bucket.take()
    clock.now += 0.0099
    assert not bucket.take()
    clock.now += 0.0001
    assert bucket.take()
    assert not bucket.take()


def test_refused_requests_take_no_token() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 2, clock)
    assert admitted(bucket, 2) == 2
    assert admitted(bucket, 1000) == 0
    clock.now += 0.1
    assert admitted(bucket, 3) == 1


def test_an_idle_bucket_fills_up_to_its_burst_only() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 20, clock)
    assert admitted(bucket, 20) == 20
    clock.now += 60
    assert admitted(bucket, 1000) == 20


def test_slow_rates_and_fractional_rates() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, 1, clock)
    assert admitted(bucket, 3) == 1
    clock.now += 1.999
    assert not bucket.take()
    clock.now += 0.001
    assert bucket.take()
    clock = Clock()
    bucket = TokenBucket(2.5, 3, clock)
    assert admitted(bucket, 10) == 3
    clock.now += 4.0
    assert admitted(bucket, 100) == 3  # full again, capped at the burst
    clock.now += 4.0
    clock.now += 0.4
    assert admitted(bucket, 5) == 3  # the tokens of 0.4 s do not go past the burst
    for _ in range(10):
        clock.now += 0.4
        assert admitted(bucket, 5) == 1


@pytest.mark.parametrize(("rate", "burst"), [(1, 1), (2.5, 3), (100, 100), (0.1, 1)])
def test_default_burst_is_one_second_of_rate_at_least_one(rate: float, burst: int) -> None:
    assert default_burst(rate) == burst


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("nan"), 1), (10, 0)])
def test_bad_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
