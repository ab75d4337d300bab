"""Injected misbehaviour (latency, 500/503 answers, 429 above a rate) and the request log."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from batchplan.sandbox.bucket import TokenBucket, default_burst

# Far more than any test or benchmark makes; only bounds memory of a
# sandbox left running for days.
REQUEST_LOG_LIMIT = 1_000_000


@dataclass(frozen=True)
class Fault:
    """An injected error answer; ``after_commit`` means the change is made, the answer lost."""

    status: int
    after_commit: bool


class Faults:
    """Fault settings (changeable at run time), the rate limit and one seeded random source.

    Every draw goes through one ``random.Random`` under a lock, so the same
    seed and the same sequence of requests give the same faults.
    """

    SETTINGS = ("latency_ms", "fault_rate", "rate_limit", "burst", "fault_reads")

    def __init__(
        self,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        rate_limit: float | None = None,
        seed: int | None = None,
        burst: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.latency_ms = 0.0
        self.fault_rate = 0.0
        self.rate_limit: float | None = None
        self.burst: int | None = None  # None: one second's worth of rate_limit
        # Tests of apply's partial failures turn faults off for reads, so the
        # plan before apply is never what fails.
        self.fault_reads = True
        self._bucket: TokenBucket | None = None
        self.configure(
            {
                "latency_ms": latency_ms,
                "fault_rate": fault_rate,
                "rate_limit": rate_limit,
                "burst": burst,
            }
        )

    def configure(self, changes: dict[str, Any]) -> None:
        """Apply any subset of ``SETTINGS``; ValueError (and nothing changed) for a bad one.

        A new ``rate_limit`` or ``burst`` starts a new, full bucket.
        """
        unknown = set(changes) - set(self.SETTINGS)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        latency = changes.get("latency_ms", self.latency_ms)
        rate = changes.get("fault_rate", self.fault_rate)
        limit = changes.get("rate_limit", self.rate_limit)
        burst = changes.get("burst", self.burst)
        if not _number(latency) or latency < 0:
            raise ValueError("latency_ms must be a number >= 0")
        if not _number(rate) or not 0 <= rate <= 1:
            raise ValueError("fault_rate must be a number from 0 to 1")
        if limit is not None and (not _number(limit) or not 0 < limit < math.inf):
            raise ValueError("rate_limit must be a number > 0, or null for none")
        if burst is not None and (type(burst) is not int or burst < 1):
            raise ValueError("burst must be an integer >= 1, or null for one second's worth")
        fault_reads = changes.get("fault_reads", self.fault_reads)
        if not isinstance(fault_reads, bool):
            raise ValueError("fault_reads must be true or false")
        with self._lock:
            self.fault_reads = fault_reads
            self.latency_ms = float(latency)
            self.fault_rate = float(rate)
            limit = None if limit is None else float(limit)
            if (limit, burst) != (self.rate_limit, self.burst) or self._bucket is None:
                self.rate_limit, self.burst = limit, burst
                self._bucket = None
                if limit is not None:
                    self._bucket = TokenBucket(limit, burst or default_burst(limit))

    def settings(self) -> dict[str, Any]:
        """The current settings, as JSON; ``burst`` is the bucket's size in force."""
        bucket = self._bucket
        return {
            "latency_ms": self.latency_ms,
            "fault_rate": self.fault_rate,
            "rate_limit": self.rate_limit,
            "burst": bucket.burst if bucket is not None else self.burst,
            "fault_reads": self.fault_reads,
        }

    def delay(self) -> None:
        """Sleep the configured latency (never while holding a lock)."""
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def refuse(self) -> str | None:
        """Why the rate limit refuses this request, or None: it took a token and goes on."""
        bucket = self._bucket
        if bucket is None or bucket.take():
            return None
        return (
            f"too many requests: the sandbox allows {bucket.rate:g} a second"
            f" in bursts of up to {bucket.burst}"
        )

    def draw(self, mutating: bool) -> Fault | None:
        """Whether this request fails; half the failed mutations fail after committing."""
        with self._lock:
            if not mutating and not self.fault_reads:
                return None
            if self.fault_rate <= 0 or self._random.random() >= self.fault_rate:
                return None
            status = self._random.choice((500, 503))
            return Fault(status, after_commit=mutating and self._random.random() < 0.5)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class RequestLog:
    """In-memory record of every ``/v1`` request answered, for counting calls in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[tuple[int, str, str, str, str, int, bool]] = deque(
            maxlen=REQUEST_LOG_LIMIT
        )
        self._seq = 0

    def add(
        self, method: str, route: str, path: str, query: str, status: int, committed: bool
    ) -> None:
        """Record one answered request."""
        with self._lock:
            self._seq += 1
            self._entries.append((self._seq, method, route, path, query, status, committed))

    def clear(self) -> None:
        """Forget every entry (sequence numbers go on)."""
        with self._lock:
            self._entries.clear()

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first, as JSON objects."""
        with self._lock:
            entries = list(self._entries)
        keys = ("seq", "method", "route", "path", "query", "status", "committed")
        return [dict(zip(keys, entry, strict=True)) for entry in entries]
