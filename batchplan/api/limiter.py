"""How fast the client sends: an adaptive concurrency window and a learned send rate.

Against the real API the limit is its rate limit and its latency, not this
machine's CPU. Two controls, both fed by the answers, gate every attempt:

- The concurrency window (attempts on the wire at once) starts at
  ``min(4, ceiling)``. Until the first sign of overload every answer adds one
  (the window doubles per round trip, as in TCP's slow start); after it, one
  is added per window's worth of answers. A 429, a 503 or a connection reset
  halves it (floor 1).
- The send rate is not capped until the first 429. Then the cap is set just
  under the rate the server was accepting, measured over the last
  ``Retry-After`` seconds (one second at least, as a token bucket refills per
  second), and grown back along a cubic curve (TCP CUBIC, as botocore's
  adaptive retry mode does): quickly far below the refused rate, slowly near
  it, faster again once past it, so the cap keeps tracking a limit that moves.

An overload signal cuts each control once: the answer to an attempt sent
before the last cut says nothing about the smaller window or rate, so it does
not cut again (without this, the 16 attempts in flight when a rate limit is
hit would halve the window down to 1).

:class:`Control` is the pure logic; the caller passes the time, so tests run
it on a simulated clock. :class:`Limiter` wraps it for threads: a blocking
``acquire`` that ``cancel`` abandons at once, and ``release``.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class Signal(enum.Enum):
    """What one attempt's outcome says about the server's capacity."""

    OK = "ok"  # any answer but 429 and 503: the server had room for it
    THROTTLED = "throttled"  # 429: over the rate limit
    OVERLOADED = "overloaded"  # 503 or a connection reset
    UNKNOWN = "unknown"  # no answer for another reason (a timeout): says nothing


@dataclass(frozen=True)
class LimiterSettings:
    """The ceiling and the constants of both controls."""

    ceiling: int = 16
    adaptive: bool = True  # False: always ``ceiling`` at once, no rate cap
    start: int = 4
    window_decrease: float = 0.5
    # The cap after a 429, as a share of the rate the server accepted. The
    # measured rate is that of a server already refusing, so close to its
    # limit: a small step down loses little throughput.
    rate_decrease: float = 0.9
    # CUBIC's C, in requests per second per second cubed (botocore's value).
    cubic_scale: float = 0.4
    min_rate: float = 0.5
    # Sends allowed back to back once paced: a fiftieth of a second's worth, to
    # absorb late wake-ups, not to burst (a burst after a pause meets a server
    # bucket that the retries of the pause have just emptied).
    burst_seconds: float = 0.02
    max_measure_seconds: float = 10.0


@dataclass(frozen=True)
class Permit:
    """Leave to send one attempt; ``seq`` orders it against the controls' cuts."""

    seq: int


class RateMeter:
    """Events per second over a recent window, counted in tenth-of-a-second slots."""

    SLOT = 0.1
    MIN_SPAN = 0.2

    def __init__(self, horizon: float, now: float) -> None:
        self._slots = max(1, math.ceil(horizon / self.SLOT))
        self._counts: deque[int] = deque([0] * self._slots, maxlen=self._slots)
        self._current = math.floor(now / self.SLOT)
        self._first: float | None = None

    def _advance(self, now: float) -> None:
        slot = math.floor(now / self.SLOT)
        for _ in range(min(slot - self._current, self._slots)):
            self._counts.append(0)
        self._current = max(self._current, slot)

    def add(self, now: float) -> None:
        self._advance(now)
        self._counts[-1] += 1
        if self._first is None:
            self._first = now

    def rate(self, now: float, window: float) -> float:
        """Events per second over the last ``window`` seconds."""
        self._advance(now)
        slots = min(self._slots, max(1, round(window / self.SLOT)))
        # The newest slot is only partly over: count only its elapsed part.
        partial = max(0.0, now - self._current * self.SLOT)
        span = (slots - 1) * self.SLOT + partial
        # Early in a run the window reaches back before the first event. The
        # time before it is not counted (it would understate the rate several
        # times over while the window is still opening), but at least
        # ``MIN_SPAN`` is, so a server's initial burst allowance is not read
        # as its rate on a few answers; an overstated first cap costs a few
        # more 429s, each cutting again from what was accepted.
        if self._first is not None:
            span = min(span, max(self.MIN_SPAN, now - self._first))
        span = max(self.SLOT / 10, span)
        counted = sum(self._counts[i] for i in range(self._slots - slots, self._slots))
        return counted / span


class Control:
    """The two controls' state; every method takes the current time. Not thread-safe."""

    def __init__(self, settings: LimiterSettings, now: float) -> None:
        if settings.ceiling < 1:
            raise ValueError("the concurrency ceiling must be at least 1")
        self.settings = settings
        self.window = (
            min(settings.start, settings.ceiling) if settings.adaptive else settings.ceiling
        )
        self.in_flight = 0
        self.rate: float | None = None  # sends per second; None: not capped
        self._slow_start = True
        self._answers = 0  # OK answers since the window last changed
        self._seq = 0
        self._window_cut_after = 0  # permits up to this seq predate the last cut
        self._rate_cut_after = 0
        self._tokens = 0.0
        self._refilled = now
        self._w_max = 0.0
        self._k = 0.0
        self._cut_at = now
        self._accepted = RateMeter(settings.max_measure_seconds, now)

    def try_acquire(self, now: float) -> Permit | float | None:
        """A permit; else the seconds until the next send token, or None: wait for a release."""
        if self.in_flight >= self.window:
            return None
        if self.rate is not None:
            self._refill(now)
            # The tolerance keeps float rounding from turning a wait of exactly
            # 1/rate into an endless series of tiny waits.
            if self._tokens < 1 - 1e-9:
                return (1 - self._tokens) / self.rate
            self._tokens = max(0.0, self._tokens - 1)
        self.in_flight += 1
        self._seq += 1
        return Permit(self._seq)

    def release(
        self, permit: Permit, signal: Signal, now: float, retry_after: float | None = None
    ) -> None:
        """The attempt of ``permit`` ended with ``signal``; adapt."""
        self.in_flight -= 1
        if not self.settings.adaptive:
            return
        if signal is Signal.OK:
            self._accepted.add(now)
            self._grow(now)
        elif signal is Signal.THROTTLED:
            self._cut_window(permit)
            self._cut_rate(permit, now, retry_after)
        elif signal is Signal.OVERLOADED:
            self._cut_window(permit)

    # -- concurrency window ---------------------------------------------------

    def _grow(self, now: float) -> None:
        self._answers += 1
        if self._slow_start or self._answers >= self.window:
            self.window = min(self.settings.ceiling, self.window + 1)
            self._answers = 0
        if self.rate is not None:
            # Never past twice what the server is accepting: a cap far above the
            # rate in use would allow a burst long after the server was probed.
            usage_cap = max(self._w_max, 2 * self._accepted.rate(now, 1.0))
            self._set_rate(now, min(self._cubic(now), usage_cap))

    def _cut_window(self, permit: Permit) -> None:
        self._slow_start = False
        if permit.seq <= self._window_cut_after:
            return
        self.window = max(1, math.floor(self.window * self.settings.window_decrease))
        self._answers = 0
        self._window_cut_after = self._seq

    # -- send rate --------------------------------------------------------------

    def _cubic(self, now: float) -> float:
        return self._w_max + self.settings.cubic_scale * (now - self._cut_at - self._k) ** 3

    def _cut_rate(self, permit: Permit, now: float, retry_after: float | None) -> None:
        if permit.seq <= self._rate_cut_after:
            return
        # The server says when it will have room again; what it accepted over
        # that span is its rate. One second at least: a token bucket refills
        # per second, and a shorter span would measure noise.
        span = min(max(1.0, retry_after or 0.0), self.settings.max_measure_seconds)
        accepted = self._accepted.rate(now, span)
        refused_at = accepted if self.rate is None else min(accepted, self.rate)
        self._w_max = max(refused_at, self.settings.min_rate)
        decrease = self.settings.rate_decrease
        self._k = (self._w_max * (1 - decrease) / self.settings.cubic_scale) ** (1 / 3)
        self._cut_at = now
        self._set_rate(now, self._w_max * decrease)
        self._tokens = 0.0
        self._rate_cut_after = self._seq

    def _set_rate(self, now: float, rate: float) -> None:
        if self.rate is not None:
            self._refill(now)
        else:
            self._refilled = now
        self.rate = max(self.settings.min_rate, rate)
        self._tokens = min(self._tokens, self._capacity())

    def _capacity(self) -> float:
        assert self.rate is not None
        return max(1.0, self.rate * self.settings.burst_seconds)

    def _refill(self, now: float) -> None:
        assert self.rate is not None
        elapsed = max(0.0, now - self._refilled)
        self._tokens = min(self._capacity(), self._tokens + elapsed * self.rate)
        self._refilled = now


class Cancelled(Exception):
    """The limiter was cancelled while (or before) waiting for a permit."""


class Limiter:
    """:class:`Control` for threads: ``acquire`` blocks until a permit, ``cancel`` ends waits."""

    def __init__(
        self, settings: LimiterSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._control = Control(settings, clock())
        self._changed = threading.Condition()
        self._cancelled = False

    def acquire(self) -> Permit:
        """Wait for a free slot and a send token; raise ``Cancelled`` once cancelled."""
        with self._changed:
            while True:
                if self._cancelled:
                    raise Cancelled
                got = self._control.try_acquire(self._clock())
                if isinstance(got, Permit):
                    return got
                # None: no free slot until a release, which notifies.
                self._changed.wait(got)

    def release(self, permit: Permit, signal: Signal, retry_after: float | None = None) -> None:
        """The attempt is over (answered or not); free its slot and adapt."""
        with self._changed:
            self._control.release(permit, signal, self._clock(), retry_after)
            self._changed.notify_all()

    def cancel(self) -> None:
        """Every waiting and later ``acquire`` raises ``Cancelled``."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()

    @property
    def window(self) -> int:
        """The current concurrency window."""
        return self._control.window

    @property
    def rate(self) -> float | None:
        """The current send-rate cap, None while uncapped."""
        return self._control.rate
