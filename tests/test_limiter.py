"""The adaptive limiter on a simulated clock: its rules one by one, then whole runs."""

from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass

import pytest

from batchplan.api.limiter import (
    Cancelled,
    Control,
    Limiter,
    LimiterSettings,
    Permit,
    RateMeter,
    Signal,
)


def take(control: Control, now: float, count: int) -> list[Permit]:
    permits = []
    for _ in range(count):
        got = control.try_acquire(now)
        assert isinstance(got, Permit), got
        permits.append(got)
    return permits


def test_starts_at_four_or_the_ceiling_if_lower() -> None:
    assert Control(LimiterSettings(ceiling=16), 0.0).window == 4
    assert Control(LimiterSettings(ceiling=2), 0.0).window == 2
    fixed = Control(LimiterSettings(ceiling=16, adaptive=False), 0.0)
    assert fixed.window == 16


def test_a_full_window_waits_for_a_release() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    permits = take(control, 0.0, 4)
    assert control.try_acquire(0.0) is None
    control.release(permits[0], Signal.OK, 0.1)
    assert isinstance(control.try_acquire(0.1), Permit)


def test_slow_start_doubles_per_round_trip_up_to_the_ceiling() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    sizes = []
    now = 0.0
    for _ in range(4):
        permits = take(control, now, control.window)
        now += 0.1
        for permit in permits:
            control.release(permit, Signal.OK, now)
        sizes.append(control.window)
    assert sizes == [8, 16, 16, 16]


def test_after_overload_one_is_added_per_window_of_answers() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    permits = take(control, 0.0, 4)
    control.release(permits[0], Signal.OVERLOADED, 0.1)
    assert control.window == 2
    control.release(permits[1], Signal.OK, 0.1)  # sent before the cut: answers still count
    assert control.window == 2
    control.release(permits[2], Signal.OK, 0.1)
    assert control.window == 3  # 2 answers = one window of 2
    control.release(permits[3], Signal.OK, 0.1)
    permits = take(control, 0.2, 3)
    control.release(permits[0], Signal.OK, 0.3)
    assert control.window == 3
    control.release(permits[1], Signal.OK, 0.3)
    assert control.window == 4  # 3 answers = one window of 3


@pytest.mark.parametrize("signal", [Signal.THROTTLED, Signal.OVERLOADED])
def test_one_overload_halves_the_window_once_not_once_per_answer(signal: Signal) -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    for permit in take(control, 0.0, 4):
        control.release(permit, Signal.OK, 0.1)
    for permit in take(control, 0.1, 8):
        control.release(permit, Signal.OK, 0.2)
    assert control.window == 16
    in_flight = take(control, 0.2, 16)
    for permit in in_flight:
        control.release(permit, signal, 0.3)
    assert control.window == 8  # not 1: all 16 were sent before the cut
    # An attempt sent after the cut cuts again.
    (later,) = take(control, 0.5, 1)  # after the pacing wait a 429 sets
    control.release(later, signal, 0.6)
    assert control.window == 4


def test_the_window_never_goes_below_one() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    for step in range(10):
        (permit,) = take(control, float(step), 1)
        control.release(permit, Signal.OVERLOADED, step + 0.5)
    assert control.window == 1


def test_a_timeout_neither_grows_nor_cuts() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    (permit,) = take(control, 0.0, 1)
    control.release(permit, Signal.UNKNOWN, 1.0)
    assert control.window == 4
    assert control.rate is None


def test_fixed_mode_never_adapts() -> None:
    control = Control(LimiterSettings(ceiling=16, adaptive=False), 0.0)
    permits = take(control, 0.0, 16)
    assert control.try_acquire(0.0) is None
    for permit in permits:
        control.release(permit, Signal.THROTTLED, 0.1, retry_after=1.0)
    assert control.window == 16
    assert control.rate is None
    assert isinstance(control.try_acquire(0.1), Permit)  # not paced either


def test_the_rate_is_not_capped_until_a_429() -> None:
    control = Control(LimiterSettings(ceiling=16), 0.0)
    (permit,) = take(control, 0.0, 1)
    control.release(permit, Signal.OVERLOADED, 0.1)
    assert control.rate is None


def test_a_429_caps_the_rate_just_under_what_the_server_accepted() -> None:
    control = Control(LimiterSettings(ceiling=1000, start=1000), 0.0)
    now = 0.0
    # 50 answers a second for two seconds, then a 429.
    for _ in range(100):
        (permit,) = take(control, now, 1)
        now += 0.02
        control.release(permit, Signal.OK, now)
    (permit,) = take(control, now, 1)
    control.release(permit, Signal.THROTTLED, now, retry_after=1.0)
    assert control.rate is not None
    assert 0.85 * 50 <= control.rate <= 0.95 * 50
    # Paced: the next token is about 1/rate away, not at once.
    wait = control.try_acquire(now)
    assert isinstance(wait, float)
    assert wait == pytest.approx(1 / control.rate)


def test_retry_after_sets_the_span_the_accepted_rate_is_measured_over() -> None:
    def cap_after(retry_after: float) -> float:
        control = Control(LimiterSettings(ceiling=1000, start=1000), 0.0)
        now = 0.0
        # 100/s for 4 s, then nothing accepted for the last second.
        for _ in range(400):
            (permit,) = take(control, now, 1)
            now += 0.01
            control.release(permit, Signal.OK, now)
        now += 1.0
        (permit,) = take(control, now, 1)
        control.release(permit, Signal.THROTTLED, now, retry_after=retry_after)
        assert control.rate is not None
        return control.rate

    # Over the last second the server accepted nothing: the floor rate.
    assert cap_after(1.0) == pytest.approx(0.5)
    # Over the last 5 s it accepted 400: 80/s, capped at 90% of it.
    assert cap_after(5.0) == pytest.approx(0.9 * 80, rel=0.05)


def test_the_capped_rate_grows_back_along_a_cubic_curve() -> None:
    control = Control(LimiterSettings(ceiling=1000, start=1000), 0.0)
    now = 0.0
    for _ in range(100):
        (permit,) = take(control, now, 1)
        now += 0.01
        control.release(permit, Signal.OK, now)
    (permit,) = take(control, now, 1)
    control.release(permit, Signal.THROTTLED, now, retry_after=1.0)
    cut = control.rate
    assert cut is not None
    rates = []
    for _ in range(600):
        got = control.try_acquire(now)
        if isinstance(got, float):
            now += got
            continue
        assert isinstance(got, Permit)
        control.release(got, Signal.OK, now)
        rates.append(control.rate or 0.0)
    # Rises back past the refused rate (100/s), slowly near it.
    assert rates[0] < 100 < rates[-1]
    assert max(rates) < 2 * 100 * 1.1


def test_answers_to_attempts_sent_before_the_cut_do_not_cut_the_rate_again() -> None:
    control = Control(LimiterSettings(ceiling=16, start=16), 0.0)
    now = 0.0
    for _ in range(10):
        for permit in take(control, now, 10):
            control.release(permit, Signal.OK, now + 0.1)
        now += 0.1
    in_flight = take(control, now, 10)
    now += 0.05
    control.release(in_flight[0], Signal.THROTTLED, now, retry_after=1.0)
    first = control.rate
    for permit in in_flight[1:]:
        control.release(permit, Signal.THROTTLED, now, retry_after=1.0)
    assert control.rate == first


def test_rate_meter_counts_the_last_window() -> None:
    meter = RateMeter(horizon=10.0, now=0.0)
    for i in range(100):
        meter.add(i * 0.05)  # 20/s for 5 s
    assert meter.rate(5.0, 1.0) == pytest.approx(20, rel=0.1)
    assert meter.rate(5.0, 5.0) == pytest.approx(20, rel=0.1)
    assert meter.rate(20.0, 1.0) == 0.0  # long idle: forgotten


# -- whole runs against a simulated rate-limited server -----------------------


@dataclass
class Outcome:
    wall: float
    attempts: int
    throttled: int


def simulate(
    settings: LimiterSettings,
    calls: int,
    latency: float,
    rate_limit: float | None = None,
    burst: float | None = None,
    retry_after: float = 1.0,
) -> Outcome:
    """``calls`` calls on ``ceiling`` threads against a token-bucket server, event by event.

    A throttled call waits ``retry_after`` on its thread and tries again, as
    the client does. The server's bucket holds ``burst`` tokens (one second's
    worth by default) and refills at ``rate_limit``; refused calls take none.
    """
    control = Control(settings, 0.0)
    tokens = burst if burst is not None else (rate_limit or 0.0)
    capacity = tokens
    refilled = 0.0
    now = 0.0
    unstarted = calls
    ready = 0  # calls on a thread, waiting for a permit
    threads = settings.ceiling
    events: list[tuple[float, int, str, Permit | None]] = []
    order = 0
    attempts = throttled = done = 0
    wake: float | None = None
    while done < calls:
        while unstarted and threads:
            unstarted -= 1
            threads -= 1
            ready += 1
        wake = None
        while ready:
            got = control.try_acquire(now)
            if not isinstance(got, Permit):
                wake = None if got is None else now + got
                break
            ready -= 1
            attempts += 1
            admitted = True
            if rate_limit is not None:
                tokens = min(capacity, tokens + (now - refilled) * rate_limit)
                refilled = now
                admitted = tokens >= 1
                if admitted:
                    tokens -= 1
            order += 1
            heapq.heappush(events, (now + latency, order, "ok" if admitted else "throttled", got))
        candidates = [t for t in (events[0][0] if events else None, wake) if t is not None]
        now = max(now, min(candidates))
        while events and events[0][0] <= now:
            _, _, kind, permit = heapq.heappop(events)
            if kind == "retry":
                ready += 1
                continue
            assert permit is not None
            if kind == "ok":
                control.release(permit, Signal.OK, now)
                done += 1
                threads += 1
            else:
                throttled += 1
                control.release(permit, Signal.THROTTLED, now, retry_after=retry_after)
                order += 1
                heapq.heappush(events, (now + retry_after, order, "retry", None))
    return Outcome(now, attempts, throttled)


def test_against_a_rate_limit_it_runs_near_the_limit_with_few_429s() -> None:
    calls, limit = 3000, 100.0
    outcome = simulate(LimiterSettings(ceiling=16), calls, latency=0.03, rate_limit=limit)
    assert outcome.wall <= 1.1 * calls / limit
    assert outcome.throttled < 0.03 * calls


def test_a_fixed_window_keeps_hitting_the_limit() -> None:
    calls, limit = 3000, 100.0
    adaptive = simulate(LimiterSettings(ceiling=16), calls, latency=0.03, rate_limit=limit)
    fixed = simulate(
        LimiterSettings(ceiling=16, adaptive=False), calls, latency=0.03, rate_limit=limit
    )
    assert fixed.throttled > 10 * max(1, adaptive.throttled)


def test_a_low_limit_with_a_small_burst_is_learned_too() -> None:
    # A small burst: the limit is felt at once, not after a second's reserve.
    outcome = simulate(LimiterSettings(ceiling=16), 1200, latency=0.03, rate_limit=20.0, burst=5.0)
    assert outcome.wall <= 1.15 * 1200 / 20
    assert outcome.throttled < 0.03 * 1200


def test_without_a_limit_it_reaches_the_ceiling_quickly() -> None:
    calls, latency = 3000, 0.1
    outcome = simulate(LimiterSettings(ceiling=16), calls, latency=latency)
    assert outcome.wall <= 1.05 * calls * latency / 16
    assert outcome.throttled == 0


# -- the thread-safe wrapper --------------------------------------------------


def assert_cancel_wakes_a_waiter(limiter: Limiter) -> None:
    """A thread blocked in ``acquire`` gets ``Cancelled`` as soon as ``cancel`` is called."""
    raised = threading.Event()

    def wait() -> None:
        try:
            limiter.acquire()
        except Cancelled:
            raised.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    limiter.cancel()
    waiter.join(timeout=10)
    assert raised.is_set()


def test_cancel_abandons_a_wait_for_a_slot_at_once() -> None:
    limiter = Limiter(LimiterSettings(ceiling=1))
    limiter.acquire()  # the only slot, never released
    assert_cancel_wakes_a_waiter(limiter)
    with pytest.raises(Cancelled):
        limiter.acquire()


def test_cancel_abandons_a_wait_for_a_send_token() -> None:
    clock = [0.0]
    limiter = Limiter(LimiterSettings(ceiling=4, start=4), clock=lambda: clock[0])
    permit = limiter.acquire()
    # A 429 before any accepted answer: the cap becomes the floor rate, 0.5/s,
    # and the clock never moves, so the next token never comes by itself.
    limiter.release(permit, Signal.THROTTLED, retry_after=1.0)
    assert limiter.rate == pytest.approx(0.5)
    assert_cancel_wakes_a_waiter(limiter)


def test_a_release_lets_a_waiting_acquire_through() -> None:
    limiter = Limiter(LimiterSettings(ceiling=1))
    first = limiter.acquire()
    got: list[Permit] = []
    waiter = threading.Thread(target=lambda: got.append(limiter.acquire()), daemon=True)
    waiter.start()
    limiter.release(first, Signal.OK)
    waiter.join(timeout=10)
    assert len(got) == 1
    assert limiter.window == 1


def test_the_accepted_rate_early_in_a_run_counts_from_the_first_answer() -> None:
    # 100 answers over the first second of a run, measured over a 5 s span:
    # the four seconds before the first answer must not dilute them to 20/s
    # (that made the first 429 cap the rate far below the server's).
    meter = RateMeter(10.0, now=0.0)
    for i in range(100):
        meter.add(10.0 + i / 100)
    assert 90 <= meter.rate(11.0, 5.0) <= 110


def test_an_initial_burst_is_spread_over_the_minimum_span() -> None:
    # 50 answers in the first tenth of a second (a server's burst allowance)
    # count over at least MIN_SPAN, not over the 0.1 s they took.
    meter = RateMeter(10.0, now=0.0)
    for i in range(50):
        meter.add(i / 500)
    assert meter.rate(0.1, 1.0) == pytest.approx(50 / RateMeter.MIN_SPAN)
