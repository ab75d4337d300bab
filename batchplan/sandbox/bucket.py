"""The sandbox's rate limit: a token bucket, exact to the nanosecond."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


def default_burst(rate: float) -> int:
    """One second's worth of requests, at least one: what ``--burst`` is when not given."""
    return max(1, math.ceil(rate))


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; it starts full.

    A request takes one token or is refused; a refused request takes nothing,
    so a client that waits gets in again. Kept as the time at which the
    bucket would next be full (the "generic cell rate algorithm"), in integer
    nanoseconds, so that a request every 10 ms against 100 a second is always
    admitted: float token counts would drift to 0.9999... and refuse some.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"the rate must be a number > 0, not {rate!r}")
        if burst < 1:
            raise ValueError(f"the burst must be at least 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._interval = round(1e9 / rate)  # nanoseconds one token takes to refill
        self._tolerance = (burst - 1) * self._interval
        self._lock = threading.Lock()
        self._full_at = self._now()  # when the bucket is (or was) last full

    def _now(self) -> int:
        return round(self._clock() * 1e9)

    def take(self) -> bool:
        """Take a token if there is one; False (and nothing taken) if the bucket is empty."""
        with self._lock:
            now = self._now()
            full_at = max(self._full_at, now)
            # Tokens missing = (full_at - now) / interval; one more would exceed burst.
            if full_at - now > self._tolerance:
                return False
            self._full_at = full_at + self._interval
            return True
